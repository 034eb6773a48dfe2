/* umgclipalert: alerts on text queries. Each analysed frame's embedding is compared with every
 * query; an alert begins when a query's score reaches the threshold and ends when it falls
 * below it (each change held for a minimum duration), posted as "umgclip-alert" element
 * messages and carried by the frames as an UmgClipAlerts custom meta. */
#pragma once

#include "gstumgclipfilter.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_ALERT (gst_umgclip_alert_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipAlert, gst_umgclip_alert, GST, UMGCLIP_ALERT, GstUmgClipFilter)

GST_ELEMENT_REGISTER_DECLARE (umgclipalert);

G_END_DECLS
