/* libgstrtspserver for skipd-testcam, plus glib-unix.h (g_unix_signal_add), which gst.h does not include. */
#ifndef SKIPD_CGSTREAMERRTSP_SHIM_H
#define SKIPD_CGSTREAMERRTSP_SHIM_H

#include <glib-unix.h>
#include <gst/rtsp-server/rtsp-server.h>

#endif
