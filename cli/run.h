/* refinery run JOB.json [--workdir DIR]: run one job's runner without the
 * server. JOB.json is what POST /v1/jobs takes ({type, params}); the params
 * are checked by the runner as at POST. The context is implemented on
 * stdout and a local folder: every event, progress report and artifact is one
 * JSON line on stdout ({"event": kind, "data": …}), the result is the last
 * ({"event": "result", "data": …}); checkpoints go to DIR/checkpoint.json and
 * a later run with the same DIR resumes from it; a model a job makes moves
 * to DIR/models/NAME; references to models and datasets are local paths;
 * SIGINT/SIGTERM ask the runner to stop.
 * Exit status: 0 success, 1 the job failed, 2 a usage or params error. */
#ifndef RF_CLI_RUN_H
#define RF_CLI_RUN_H

int rf_cmd_run(int argc, char **argv);

#endif
