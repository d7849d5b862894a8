-- Mends the links LDoc leaves in the pages it makes from Markdown (the
-- README as a topic): `make docs` runs it on build/doc/.
--
--   lua5.4 spec/tools/doc-links.lua build/doc
--
-- A link to a file of the repository (`doc/cli.md`, `LICENSE`) is written
-- relative to the Markdown file, and LDoc copies it unchanged into a page
-- two or three folders away: it is pointed back at the file. A link to a
-- heading (`#try-it-locally`, as GitHub names it) is pointed at the name
-- LDoc gives that heading (`Try_it_locally`). Prints each page mended and
-- how many links; fails on a heading link that matches no heading.
local root_dir = assert(arg[1], "usage: doc-links.lua DOC_DIR")

-- What LDoc itself links to, relative to the page: left as it is.
local function generated(href)
  return href:find("^%.%./") or href:find("^modules/") or href:find("^topics/")
    or href == "ldoc.css" or href == "index.html"
end

local function mend(path, up)
  local f = assert(io.open(path, "rb"))
  local html = f:read("a")
  f:close()
  local anchors = {}
  for name in html:gmatch('name="([^"]+)"') do anchors[name:lower():gsub("_", "-")] = name end
  local mended, unknown = 0, {}
  html = html:gsub('href="([^"]*)"', function(href)
    local slug = href:match("^#(.+)$")
    if slug then
      local name = anchors[slug]
      if name and name ~= slug then
        mended = mended + 1
        return 'href="#' .. name .. '"'
      elseif not name and not html:find('name="' .. slug .. '"', 1, true) then
        unknown[#unknown + 1] = href
      end
      return nil
    end
    if href == "" or href:find("^%a[%w+.-]*:") or href:find("^/") or generated(href) then return nil end
    mended = mended + 1
    return 'href="' .. up .. href .. '"'
  end)
  if #unknown > 0 then error(path .. ": links to no heading: " .. table.concat(unknown, " "), 0) end
  if mended > 0 then
    f = assert(io.open(path, "wb"))
    f:write(html)
    f:close()
    print(("%s: %d links mended"):format(path, mended))
  end
end

-- The repository's root as seen from a page of DOC_DIR (build/doc) or of
-- its folders.
local depth = select(2, root_dir:gsub("[^/]+", ""))
local up = ("../"):rep(depth)
mend(root_dir .. "/index.html", up)
local p = io.popen("ls " .. root_dir .. "/topics/*.html 2>/dev/null")
for page in p:lines() do mend(page, "../" .. up) end
p:close()
