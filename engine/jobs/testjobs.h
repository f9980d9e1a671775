/* Job types for exercising the queue itself, registered only when
 * REFINERY_TEST_JOBS=1 (tests and the HTTP benchmark):
 *   test.noop      finishes at once; result echoes params.echo
 *   test.sleep     runs params.ms milliseconds in params.steps steps, with
 *                  progress, a checkpoint after each step, resume from it, and
 *                  a stop at the next step boundary when asked
 *   test.fail      fails its first params.fail_attempts attempts (retryable),
 *                  or every attempt with a final error when params.final
 *   test.artifact  writes params.content to a file and registers it
 *   test.model     copies the checkpoint folder params.from and registers it
 *                  as a model named params.name */
#ifndef RF_TESTJOBS_H
#define RF_TESTJOBS_H

void rf_testjobs_register(void);

#endif
