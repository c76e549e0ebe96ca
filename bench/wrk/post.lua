-- POST a rotating set of bodies to one path: a single metric or a batch (JSON) to /metrics, or
-- line protocol to InfluxDB's /write. Arguments: path, content type, bodies file.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local rotation = common.rotation()

setup = common.setup

function init(args)
  local headers = { ["Content-Type"] = args[2] }
  local bodies = common.read_records(args[3])
  local requests = {}
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", args[1], headers, body)
  end
  rotation.fill(requests, thread_index)
end

request = rotation.next

done = common.done
