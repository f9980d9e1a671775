-- wrk: a mixed read/write load on the API, each request drawn at random by
-- weight: job reads (a finished job from the cache, a running one from
-- PostgreSQL), a list page, an event page, an artifact download (sendfile),
-- job creation (one that finishes at once, one that writes an artifact), and
-- the health check. SOAK_JOB, SOAK_LIVE and SOAK_ART name the objects.
local reqs = {}

function init(args)
  local key = os.getenv("BENCH_KEY")
  local done, live, art = os.getenv("SOAK_JOB"), os.getenv("SOAK_LIVE"), os.getenv("SOAK_ART")
  local h = { ["Authorization"] = "Bearer " .. key }
  local hp = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
  local mix = {
    { 35, wrk.format("GET", "/v1/jobs/" .. done, h) },
    { 15, wrk.format("GET", "/v1/jobs/" .. live, h) },
    { 10, wrk.format("GET", "/v1/jobs?limit=20", h) },
    { 10, wrk.format("GET", "/v1/jobs/" .. done .. "/events?limit=50", h) },
    { 5, wrk.format("GET", "/v1/artifacts/" .. art .. "/content", h) },
    { 15, wrk.format("POST", "/v1/jobs", hp, '{"type":"test.noop","params":{"echo":"soak"}}') },
    { 5, wrk.format("POST", "/v1/jobs", hp, '{"type":"test.artifact","params":{"content":"soak ","repeat":64}}') },
    { 5, wrk.format("GET", "/healthz", {}) },
  }
  for _, m in ipairs(mix) do
    for _ = 1, m[1] do reqs[#reqs + 1] = m[2] end
  end
  math.randomseed(os.time() + (args[1] and #args[1] or 0))
end

function request()
  return reqs[math.random(#reqs)]
end
