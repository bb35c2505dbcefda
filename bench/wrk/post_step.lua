-- POST the back-pain screen of many in-progress check-ins in turn (each from its patient's own
-- session). Each visit to a check-in flips the pain score between 5 and 4, so every request changes
-- the stored answers and is scored again (MR2), never a no-op.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")
local targets = dofile(here .. "targets.lua")

local list
local i = 0

function init(args)
  list = targets.load()
end

function request()
  i = i % #list + 1
  local t = list[i]
  t.n = t.n + 1
  local pain = (t.n % 2 == 1) and "5" or "4"
  return targets.post(t, "&back_pain=" .. pain)
end
