/* Shared by the fuzz harnesses: a private scratch directory for the files that the parsers read
 * by path, and splitting one fuzz input into the several files a harness needs. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "tokenizer.h"

/* Around code that builds a harness's input, not code under test, whose leaks are not ours:
 * LeakSanitizer ignores what is allocated between the two (no-ops without ASan). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FUZZ_HAVE_LSAN)
#define FUZZ_HAVE_LSAN 1
#endif
#ifdef FUZZ_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#define FUZZ_LSAN_DISABLE() __lsan_disable ()
#define FUZZ_LSAN_ENABLE() __lsan_enable ()
#else
#define FUZZ_LSAN_DISABLE() ((void) 0)
#define FUZZ_LSAN_ENABLE() ((void) 0)
#endif

/* The separator between the files packed into one input. */
#define FUZZ_SPLIT "\n--8<--\n"

/* libFuzzer's entry point; the replay driver (replay_main.c) calls it too. */
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A path in the harness's scratch directory (created once per process). */
const gchar *fuzz_path (const gchar *name);
/* Writes bytes to fuzz_path (name) and returns that path. */
const gchar *fuzz_write (const gchar *name, const void *data, gsize size);
/* Removes a file of the scratch directory, if present. */
void fuzz_remove (const gchar *name);
/* Splits data at FUZZ_SPLIT into at most max_parts parts (the last takes the rest); returns the
 * number found. parts point into data. */
guint fuzz_split (const uint8_t *data, gsize size, guint max_parts, const uint8_t **parts,
                  gsize *lengths);
/* A NUL-terminated copy. */
gchar *fuzz_string (const uint8_t *data, gsize size);
/* The directory of the test models (tests/models in the source tree). */
const gchar *fuzz_models_dir (void);
/* CLIP's tokenizer (the OpenAI .gz of the OpenCLIP test model), loaded once. */
UmgTokenizer *fuzz_clip_tokenizer (void);
