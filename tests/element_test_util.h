/* Shared pieces of the element tests: the model and device they run on (from the environment
 * meson sets), elements made with them, harnesses and patterned frames. */
#pragma once

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

G_BEGIN_DECLS

/* UMGCLIP_TEST_MODEL and UMGCLIP_TEST_DEVICE (default cpu). */
const gchar *element_test_model (void);
const gchar *element_test_device (void);

/* An element of factory set to the test model and device. */
GstElement *element_test_make (const gchar *factory);

GstHarness *element_test_harness (GstElement *element, const gchar *caps);

/* A frame of the harness's current caps filled with a blocky pattern that depends on seed. */
GstBuffer *element_test_frame (GstHarness *harness, guint seed, GstClockTime pts);

/* Starting element fails, and the bus gets an error from it whose message contains expected.
 * Takes the element's reference. */
void element_test_assert_start_error (GstElement *element, const gchar *expected);

/* Pops the bus's element messages and counts the "umgclip-inference" ones among them. */
guint element_test_count_inferences (GstBus *bus);

G_END_DECLS
