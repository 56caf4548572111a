/*
 * banned: functions spool's code must not call, made into compile errors.
 * Force-included into every target by CMake (-include). Each has a bounded
 * or reentrant replacement: snprintf, strtol/strtoull, gmtime_r, strtok_r,
 * memcpy with an explicit length.
 */
#ifndef SPOOL_BANNED_H
#define SPOOL_BANNED_H

/* Declare the real functions first, so the macros below touch only our code.
 * spool builds for glibc with GNU extensions; files that say so themselves
 * repeat this same (empty) definition, which C allows. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANNED(fn) sorry_##fn##_is_banned_in_spool

#undef strcpy
#define strcpy(...) BANNED(strcpy)
#undef strcat
#define strcat(...) BANNED(strcat)
#undef strncpy
#define strncpy(...) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef atoi
#define atoi(...) BANNED(atoi)
#undef atol
#define atol(...) BANNED(atol)
#undef gmtime
#define gmtime(...) BANNED(gmtime)
#undef localtime
#define localtime(...) BANNED(localtime)
#undef strtok
#define strtok(...) BANNED(strtok)

#endif
