-- wrk: GET one job by id.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
