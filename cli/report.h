/* `refinery report RESULT.json [--out FILE.html]`: a pipeline job's result
 * (as GET /v1/jobs/{id} returns it, or its `result` alone) rendered as the
 * same self-contained HTML report the job registers. */
#ifndef RF_CLI_REPORT_H
#define RF_CLI_REPORT_H

/* argv[0] is "report". Returns the process exit status. */
int rf_cmd_report(int argc, char **argv);

#endif
