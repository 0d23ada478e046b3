/*
 * faults.h - failing the log's writes on purpose, for the unit tests.
 *
 * Compiled only into the copy of the log that the unit tests link (the CMake
 * target moonlog_log_faults, built with ML_FAULT_INJECTION): no shipped build
 * can fail a write on purpose.
 */
#ifndef ML_LOG_FAULTS_H
#define ML_LOG_FAULTS_H

#ifndef ML_FAULT_INJECTION
#error "log/faults.h is for the unit tests: only they are built with ML_FAULT_INJECTION"
#endif

struct ml_log;

/* Makes the next write (on_write 1) or fdatasync (0) of a write cycle fail with errno `err`. */
void ml_log_inject_fault(struct ml_log *log, int on_write, int err);

#endif
