/* libmosquitto, the reference MQTT client (Debian: libmosquitto-dev), for the mqtt stage. */
#ifndef SKIPD_CMOSQUITTO_SHIM_H
#define SKIPD_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#endif
