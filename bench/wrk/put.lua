-- PUT /metrics/{id}: replace existing metrics in turn. Arguments: ids file, thread count, bodies file.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local requests = {}
local position = 0

setup = common.setup

function init(args)
  local ids = common.share(common.read_records(args[1]), thread_index, tonumber(args[2]))
  local bodies = common.read_records(args[3])
  local headers = { ["Content-Type"] = "application/json" }
  for i, id in ipairs(ids) do
    requests[i] = wrk.format("PUT", "/metrics/" .. id, headers, bodies[(i - 1) % #bodies + 1])
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end

done = common.done
