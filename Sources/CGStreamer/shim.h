/* The only C in skipd: GStreamer headers plus wrappers for what Swift cannot import
   (function-like macros, casts and varargs). */
#ifndef SKIPD_CGSTREAMER_SHIM_H
#define SKIPD_CGSTREAMER_SHIM_H

#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

static inline GstBin *swgst_bin(GstElement *e) { return GST_BIN(e); }
static inline GstAppSink *swgst_app_sink(GstElement *e) { return GST_APP_SINK(e); }
static inline GstAppSrc *swgst_app_src(GstElement *e) { return GST_APP_SRC(e); }
static inline GObject *swgst_object(gpointer o) { return G_OBJECT(o); }
static inline GType swgst_type_string(void) { return G_TYPE_STRING; }
static inline const char *swgst_object_name(gpointer o) { return GST_OBJECT_NAME(o); }
static inline GstElementFactory *swgst_element_get_factory(GstElement *e) { return gst_element_get_factory(e); }
static inline GstBuffer *swgst_buffer_ref(GstBuffer *b) { return gst_buffer_ref(b); }
static inline void swgst_buffer_unref(GstBuffer *b) { gst_buffer_unref(b); }
static inline GstCaps *swgst_caps_ref(GstCaps *c) { return gst_caps_ref(c); }
static inline void swgst_caps_unref(GstCaps *c) { gst_caps_unref(c); }
static inline void swgst_sample_unref(GstSample *s) { gst_sample_unref(s); }
static inline void swgst_message_unref(GstMessage *m) { gst_message_unref(m); }
/* Checks `name=value` against an element's property: 0 ok, 1 no such property, 2 not writable, 3 bad value.
   The value type's name goes to *type_name either way (when the property exists). */
static inline int swgst_check_property(GstElement *e, const char *name, const char *value,
                                       const char **type_name) {
    GParamSpec *ps = g_object_class_find_property(G_OBJECT_GET_CLASS(e), name);
    if (!ps) return 1;
    *type_name = g_type_name(G_PARAM_SPEC_VALUE_TYPE(ps));
    if (!(ps->flags & G_PARAM_WRITABLE)) return 2;
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_PARAM_SPEC_VALUE_TYPE(ps));
    gboolean ok = gst_value_deserialize_with_pspec(&v, value, ps);
    g_value_unset(&v);
    return ok ? 0 : 3;
}

/* Whether a factory declares any pad template of this direction (sources have no sink pads). */
static inline gboolean swgst_factory_has_pads(GstElementFactory *f, GstPadDirection dir) {
    for (const GList *l = gst_element_factory_get_static_pad_templates(f); l; l = l->next) {
        const GstStaticPadTemplate *t = l->data;
        if (t->direction == dir) return TRUE;
    }
    return FALSE;
}

#define SWGST_MSECOND ((GstClockTime)1000000ULL)

#endif
