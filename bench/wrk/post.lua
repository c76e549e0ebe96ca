-- POST a rotating set of bodies to one path: a single metric or a batch (JSON) to /metrics, or
-- line protocol to InfluxDB's /write. Arguments: path, content type, bodies file.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local requests = {}
local position = 0

setup = common.setup

function init(args)
  local headers = { ["Content-Type"] = args[2] }
  local bodies = common.read_records(args[3])
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", args[1], headers, body)
  end
  position = thread_index % #requests
end

function request()
  position = position % #requests + 1
  return requests[position]
end

done = common.done
