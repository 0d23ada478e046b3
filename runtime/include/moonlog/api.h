/*
 * api.h - the export mark of libmoonlog's public functions.
 *
 * The library is built with hidden visibility; only what is marked ML_API is
 * part of the shared library's interface.
 */
#ifndef MOONLOG_API_H
#define MOONLOG_API_H

#define ML_API __attribute__((visibility("default")))

#endif
