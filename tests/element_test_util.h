/* Shared pieces of the element tests: the model and device they run on (from the environment
 * meson sets), elements made with them, harnesses and patterned frames. */
#pragma once

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

G_BEGIN_DECLS

/* UMGCLIP_TEST_MODEL and UMGCLIP_TEST_DEVICE (default cpu). */
const gchar *element_test_model (void);
const gchar *element_test_device (void);

/* An element of factory set to the test model and device (and schedule=ordered). */
GstElement *element_test_make (const gchar *factory);

GstHarness *element_test_harness (GstElement *element, const gchar *caps);

/* A frame of the harness's current caps filled with a blocky pattern that depends on seed. */
GstBuffer *element_test_frame (GstHarness *harness, guint seed, GstClockTime pts);

/* Pushes in and returns the buffer that comes out (the element must make exactly one). */
GstBuffer *element_test_push_pull (GstHarness *harness, GstBuffer *in);

/* An upstream umgclipenc meta (model "tiny-hf-f16") for an input_size × input_size network input
 * in 8 px patches: dense cells in columns < split are row a of labels (n × dim), the others row b;
 * the global embedding is row a. Tags then say which columns a region covers. */
void element_test_add_dense_meta (GstBuffer *buffer, const gfloat *labels, guint dim,
                                  guint input_size, guint a, guint b, guint split);

/* Starting element fails, and the bus gets an error from it whose message contains expected.
 * Takes the element's reference. */
void element_test_assert_start_error (GstElement *element, const gchar *expected);

/* Pops the bus's element messages and counts the "umgclip-inference" ones among them. */
guint element_test_count_inferences (GstBus *bus);

G_END_DECLS
