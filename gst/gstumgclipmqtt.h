/* An MQTT publisher for umgclipjson, on libmosquitto's own network thread: publishing never
 * blocks the streaming thread. Messages go out with QoS 1; those not yet acknowledged by the
 * broker (sent, queued while it is away, resent after a reconnect) are bounded, and what does
 * not fit is dropped and counted. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _GstUmgClipMqtt GstUmgClipMqtt;

typedef struct
{
  guint64 published; /* acknowledged by the broker */
  guint64 dropped;   /* never sent: no room while the broker was away */
  guint queued;      /* handed over, not yet acknowledged */
  gboolean connected;
  guint64 connections; /* successful connections, the first one included */
} GstUmgClipMqttStats;

/* address: HOST:PORT (PORT defaults to 1883). Connecting goes on in a thread of its own,
 * retried from 1 s apart, doubling up to max_reconnect_s; NULL with an error naming the address
 * only when it is malformed. */
GstUmgClipMqtt *gst_umgclip_mqtt_new (const gchar *address, const gchar *client_id,
                                      const gchar *topic, guint max_queued, guint max_reconnect_s,
                                      GError **error);
/* Queues payload for the topic; FALSE when it was dropped (no room). */
gboolean gst_umgclip_mqtt_publish (GstUmgClipMqtt *mqtt, const gchar *payload);
/* Waits up to timeout_us for every queued message to be acknowledged; TRUE when they were. */
gboolean gst_umgclip_mqtt_flush (GstUmgClipMqtt *mqtt, gint64 timeout_us);
/* Why the broker could not be reached the last time it was not, or NULL. */
gchar *gst_umgclip_mqtt_dup_last_error (GstUmgClipMqtt *mqtt);
void gst_umgclip_mqtt_get_stats (GstUmgClipMqtt *mqtt, GstUmgClipMqttStats *stats);
/* Disconnects; what is still queued is lost: count it first (get_stats: queued). */
void gst_umgclip_mqtt_free (GstUmgClipMqtt *mqtt);

G_END_DECLS
