/* refinery jobs watch JOB_ID: a terminal view of a job's progress from its
 * event stream, over the HTTP API (REFINERY_URL, REFINERY_API_KEY). */
#ifndef RF_CLI_WATCH_H
#define RF_CLI_WATCH_H

/* argv[0] is "watch"; returns the exit status (0 the job succeeded, 1 it
 * failed or was cancelled, 2 it could not be watched). */
int rf_cmd_watch(int argc, char **argv);

#endif
