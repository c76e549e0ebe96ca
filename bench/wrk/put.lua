-- PUT /metrics/{id}: replace existing metrics in turn. Arguments: ids file, thread count, bodies file.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local rotation = common.rotation()

setup = common.setup

function init(args)
  local ids = common.share(common.read_records(args[1]), thread_index, tonumber(args[2]))
  local bodies = common.read_records(args[3])
  local headers = { ["Content-Type"] = "application/json" }
  local requests = {}
  for i, id in ipairs(ids) do
    requests[i] = wrk.format("PUT", "/metrics/" .. id, headers, bodies[(i - 1) % #bodies + 1])
  end
  rotation.fill(requests)
end

request = rotation.next

done = common.done
