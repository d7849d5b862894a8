--- The time one `require` takes in this fresh process: CPU time (user and
-- system) of the call, which for this single-threaded work on cached files
-- is its wall time, measured with the clock the interpreter has built in.
--
--   lua5.4 bench/require_time.lua MODULE   ->   RESULT seconds=S
local env = require "bench.env"

local name = arg[1] or error("usage: require_time.lua MODULE", 0)
local clock = os.clock

local t0 = clock()
require(name)
local t1 = clock()
env.report { seconds = string.format("%.6f", t1 - t0) }
