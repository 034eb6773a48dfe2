/* The MQTT publisher (gstumgclipmqtt.h). While connected, messages go to libmosquitto, which
 * keeps QoS 1 messages until the broker acknowledges them and sends them again after a
 * reconnect; while not, they wait here and are handed over on connecting. Both together are
 * bounded; what does not fit is counted as dropped. */
#include "gstumgclipmqtt.h"

#include "umgclip.h"

#include <errno.h>
#include <mosquitto.h>
#include <string.h>

#define KEEPALIVE_S 30

struct _GstUmgClipMqtt
{
  struct mosquitto *mosq;
  gchar *topic, *host;
  gint port;
  guint max_queued, max_reconnect_s;
  GThread *connector; /* until the first connection; libmosquitto's thread after it */
  gboolean stopping;  /* under lock */
  gchar *last_error;  /* why the broker cannot be reached, under lock */

  GMutex lock; /* the fields below; taken by libmosquitto's thread in the callbacks */
  GCond acked;
  GHashTable *queued; /* message ids handed over, not acknowledged */
  GHashTable *early;  /* ids acknowledged before their hand-over returned */
  GQueue waiting;     /* payloads not handed over: no connection */
  GstUmgClipMqttStats stats;
};

static gsize library_ready = 0;

static gint hand_over (GstUmgClipMqtt *mqtt, const gchar *payload);

/* On the network thread: what waited for the connection is handed over, in order. */
static void
on_connect (struct mosquitto *mosq, void *data, int rc)
{
  GstUmgClipMqtt *mqtt = data;
  gchar *payload;

  g_mutex_lock (&mqtt->lock);
  mqtt->stats.connected = rc == 0;
  if (rc == 0)
    mqtt->stats.connections++;
  while (rc == 0 && (payload = g_queue_pop_head (&mqtt->waiting)) != NULL)
    {
      g_mutex_unlock (&mqtt->lock);
      rc = hand_over (mqtt, payload);
      g_mutex_lock (&mqtt->lock);
      if (rc == MOSQ_ERR_NO_CONN)
        g_queue_push_head (&mqtt->waiting, payload);
      else
        g_free (payload);
    }
  mqtt->stats.queued = g_hash_table_size (mqtt->queued) + mqtt->waiting.length;
  g_mutex_unlock (&mqtt->lock);
}

static void
on_disconnect (struct mosquitto *mosq, void *data, int rc)
{
  GstUmgClipMqtt *mqtt = data;
  g_mutex_lock (&mqtt->lock);
  mqtt->stats.connected = FALSE;
  g_mutex_unlock (&mqtt->lock);
}

static void
on_publish (struct mosquitto *mosq, void *data, int mid)
{
  GstUmgClipMqtt *mqtt = data;
  g_mutex_lock (&mqtt->lock);
  if (g_hash_table_remove (mqtt->queued, GINT_TO_POINTER (mid)))
    mqtt->stats.published++;
  else
    g_hash_table_add (mqtt->early, GINT_TO_POINTER (mid));
  mqtt->stats.queued = g_hash_table_size (mqtt->queued) + mqtt->waiting.length;
  g_cond_broadcast (&mqtt->acked);
  g_mutex_unlock (&mqtt->lock);
}

static gboolean
parse_address (const gchar *address, gchar **host, gint *port, GError **error)
{
  const gchar *colon;
  guint64 value = 1883;

  if (address == NULL || *address == '\0')
    goto bad;
  colon = strrchr (address, ':');
  if (colon != NULL && !g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &value, NULL))
    goto bad;
  *host = colon != NULL ? g_strndup (address, colon - address) : g_strdup (address);
  if (**host == '\0')
    {
      g_clear_pointer (host, g_free);
      goto bad;
    }
  *port = (gint) value;
  return TRUE;
bad:
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
               "MQTT address '%s' is not HOST:PORT (a port from 1 to 65535)",
               address != NULL ? address : "");
  return FALSE;
}

/* The first connection, tried again and again (libmosquitto's own thread reconnects only
 * once it has been connected); then libmosquitto's network thread takes over. */
static gpointer
connector_main (gpointer data)
{
  GstUmgClipMqtt *mqtt = data;
  guint delay_s = 1;

  for (;;)
    {
      gint rc = mosquitto_connect (mqtt->mosq, mqtt->host, mqtt->port, KEEPALIVE_S);
      gint64 until;
      g_mutex_lock (&mqtt->lock);
      if (rc == MOSQ_ERR_SUCCESS || mqtt->stopping)
        {
          g_mutex_unlock (&mqtt->lock);
          if (rc == MOSQ_ERR_SUCCESS)
            mosquitto_loop_start (mqtt->mosq);
          return NULL;
        }
      g_free (mqtt->last_error);
      mqtt->last_error
          = g_strdup_printf ("%s:%d: %s", mqtt->host, mqtt->port,
                             rc == MOSQ_ERR_ERRNO ? g_strerror (errno) : mosquitto_strerror (rc));
      until = g_get_monotonic_time () + delay_s * G_USEC_PER_SEC;
      while (!mqtt->stopping && g_cond_wait_until (&mqtt->acked, &mqtt->lock, until))
        ;
      if (mqtt->stopping)
        {
          g_mutex_unlock (&mqtt->lock);
          return NULL;
        }
      g_mutex_unlock (&mqtt->lock);
      delay_s = MIN (delay_s * 2, mqtt->max_reconnect_s);
    }
}

GstUmgClipMqtt *
gst_umgclip_mqtt_new (const gchar *address, const gchar *client_id, const gchar *topic,
                      guint max_queued, guint max_reconnect_s, GError **error)
{
  GstUmgClipMqtt *mqtt;
  g_autofree gchar *host = NULL;
  gint port;

  if (!parse_address (address, &host, &port, error))
    return NULL;
  if (topic == NULL || *topic == '\0' || strpbrk (topic, "#+") != NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "MQTT topic '%s' is empty or has a wildcard (# or +)", topic ? topic : "");
      return NULL;
    }
  if (g_once_init_enter (&library_ready))
    {
      mosquitto_lib_init ();
      g_once_init_leave (&library_ready, 1);
    }
  mqtt = g_new0 (GstUmgClipMqtt, 1);
  g_mutex_init (&mqtt->lock);
  g_cond_init (&mqtt->acked);
  mqtt->queued = g_hash_table_new (g_direct_hash, g_direct_equal);
  mqtt->early = g_hash_table_new (g_direct_hash, g_direct_equal);
  mqtt->topic = g_strdup (topic);
  mqtt->max_queued = MAX (max_queued, 1);
  mqtt->mosq = mosquitto_new (client_id, TRUE, mqtt);
  if (mqtt->mosq == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "MQTT client for %s could not be made (client id '%s')", address,
                   client_id ? client_id : "");
      gst_umgclip_mqtt_free (mqtt);
      return NULL;
    }
  mosquitto_connect_callback_set (mqtt->mosq, on_connect);
  mosquitto_disconnect_callback_set (mqtt->mosq, on_disconnect);
  mosquitto_publish_callback_set (mqtt->mosq, on_publish);
  mosquitto_reconnect_delay_set (mqtt->mosq, 1, MAX (max_reconnect_s, 1), TRUE);
  /* everything queued may be in flight at once: nothing waits behind a window */
  mosquitto_max_inflight_messages_set (mqtt->mosq, 0);
  /* a broker that is not there yet is retried by the network thread */
  mqtt->host = g_steal_pointer (&host);
  mqtt->port = port;
  mqtt->max_reconnect_s = MAX (max_reconnect_s, 1);
  mqtt->connector = g_thread_new ("umgclip-mqtt", connector_main, mqtt);
  return mqtt;
}

/* Hands payload to libmosquitto, not under the lock (the network thread takes it in the
 * callbacks); its id joins the queued ones. MOSQ_ERR_NO_CONN: not connected, nothing done. */
static gint
hand_over (GstUmgClipMqtt *mqtt, const gchar *payload)
{
  gint mid = 0;
  gint rc = mosquitto_publish (mqtt->mosq, &mid, mqtt->topic, (gint) strlen (payload), payload, 1,
                               FALSE);
  g_mutex_lock (&mqtt->lock);
  if (rc == MOSQ_ERR_NO_CONN)
    ;
  else if (rc != MOSQ_ERR_SUCCESS)
    mqtt->stats.dropped++;
  else if (g_hash_table_remove (mqtt->early, GINT_TO_POINTER (mid)))
    mqtt->stats.published++;
  else
    g_hash_table_add (mqtt->queued, GINT_TO_POINTER (mid));
  g_mutex_unlock (&mqtt->lock);
  return rc;
}

gboolean
gst_umgclip_mqtt_publish (GstUmgClipMqtt *mqtt, const gchar *payload)
{
  gboolean connected;
  gint rc = MOSQ_ERR_NO_CONN;

  g_mutex_lock (&mqtt->lock);
  if (g_hash_table_size (mqtt->queued) + mqtt->waiting.length >= mqtt->max_queued)
    {
      mqtt->stats.dropped++;
      g_mutex_unlock (&mqtt->lock);
      return FALSE;
    }
  /* behind what waits already, so that messages keep their order */
  connected = mqtt->stats.connected && g_queue_is_empty (&mqtt->waiting);
  g_mutex_unlock (&mqtt->lock);

  if (connected)
    rc = hand_over (mqtt, payload);
  g_mutex_lock (&mqtt->lock);
  if (rc == MOSQ_ERR_NO_CONN)
    g_queue_push_tail (&mqtt->waiting, g_strdup (payload));
  mqtt->stats.queued = g_hash_table_size (mqtt->queued) + mqtt->waiting.length;
  g_mutex_unlock (&mqtt->lock);
  return rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN;
}

gboolean
gst_umgclip_mqtt_flush (GstUmgClipMqtt *mqtt, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  gboolean empty;

  g_mutex_lock (&mqtt->lock);
  while (g_hash_table_size (mqtt->queued) + mqtt->waiting.length > 0
         && g_cond_wait_until (&mqtt->acked, &mqtt->lock, deadline))
    ;
  empty = g_hash_table_size (mqtt->queued) + mqtt->waiting.length == 0;
  g_mutex_unlock (&mqtt->lock);
  return empty;
}

gchar *
gst_umgclip_mqtt_dup_last_error (GstUmgClipMqtt *mqtt)
{
  gchar *text;
  g_mutex_lock (&mqtt->lock);
  text = g_strdup (mqtt->last_error);
  g_mutex_unlock (&mqtt->lock);
  return text;
}

void
gst_umgclip_mqtt_get_stats (GstUmgClipMqtt *mqtt, GstUmgClipMqttStats *stats)
{
  g_mutex_lock (&mqtt->lock);
  *stats = mqtt->stats;
  g_mutex_unlock (&mqtt->lock);
}

void
gst_umgclip_mqtt_free (GstUmgClipMqtt *mqtt)
{
  if (mqtt == NULL)
    return;
  if (mqtt->connector != NULL)
    {
      g_mutex_lock (&mqtt->lock);
      mqtt->stopping = TRUE;
      g_cond_broadcast (&mqtt->acked);
      g_mutex_unlock (&mqtt->lock);
      g_thread_join (mqtt->connector);
    }
  if (mqtt->mosq != NULL)
    {
      mosquitto_disconnect (mqtt->mosq);
      mosquitto_loop_stop (mqtt->mosq, TRUE);
      mosquitto_destroy (mqtt->mosq);
    }
  g_hash_table_unref (mqtt->queued);
  g_hash_table_unref (mqtt->early);
  g_queue_clear_full (&mqtt->waiting, g_free);
  g_cond_clear (&mqtt->acked);
  g_mutex_clear (&mqtt->lock);
  g_free (mqtt->topic);
  g_free (mqtt->host);
  g_free (mqtt->last_error);
  g_free (mqtt);
}
