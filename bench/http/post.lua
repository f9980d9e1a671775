-- wrk: POST /v1/jobs with a job type that finishes at once.
wrk.method = "POST"
wrk.body = '{"type":"test.noop","params":{"echo":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
