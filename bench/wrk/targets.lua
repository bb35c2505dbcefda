-- Reads the file named by WRK_TARGETS: one line per patient check-in, "path<TAB>cookie<TAB>csrf".
local M = {}

function M.load()
  local name = os.getenv("WRK_TARGETS")
  if not name then error("WRK_TARGETS is not set") end
  local list = {}
  for line in io.lines(name) do
    local path, cookie, csrf = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
    if path then
      table.insert(list, {path = path, cookie = cookie, csrf = csrf, n = 0})
    end
  end
  if #list == 0 then error("no targets in " .. name) end
  return list
end

function M.post(t, body)
  return wrk.format("POST", t.path, {
    ["Cookie"] = "session=" .. t.cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "csrf_token=" .. t.csrf .. body)
end

return M
