-- DELETE /metrics/{id}: each seeded id once. A thread whose ids are all deleted stops, so the run is
-- bounded in count as well as time and never measures 404s. Arguments: ids file, thread count.
local common = dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local ids = {}
local position = 0

setup = common.setup

function init(args)
  ids = common.share(common.read_records(args[1]), thread_index, tonumber(args[2]))
end

function request()
  position = position + 1
  if position > #ids then
    -- Out of ids: repeat the last one (a 404, counted as a status error) until stop() takes effect.
    wrk.thread:stop()
    return wrk.format("DELETE", "/metrics/" .. ids[#ids])
  end
  sent_primary = position
  return wrk.format("DELETE", "/metrics/" .. ids[position])
end

done = common.done
