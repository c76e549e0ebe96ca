-- POST one recorded body over and over (a real agent's request, replayed). Arguments: path, body file,
-- content type, content encoding ("" for none).
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

setup = common.setup

function init(args)
  local file = assert(io.open(args[2], "rb"))
  local body = file:read("*a")
  file:close()
  local headers = { ["Content-Type"] = args[3] }
  if args[4] ~= "" then
    headers["Content-Encoding"] = args[4]
  end
  prepared = wrk.format("POST", args[1], headers, body)
end

function request()
  return prepared
end

done = common.done
