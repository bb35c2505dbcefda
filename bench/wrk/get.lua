-- GET one page (the URL and Cookie header come from the command line); report.lua does the counting.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")
