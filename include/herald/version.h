#ifndef HERALD_VERSION_H
#define HERALD_VERSION_H

#define HR_VERSION_MAJOR 0
#define HR_VERSION_MINOR 1
#define HR_VERSION_PATCH 0
#define HR_VERSION_STRING "0.1.0"

#if defined(HR_BUILDING_LIB) || defined(HR_STATIC)
#define HR_API __attribute__((visibility("default")))
#else
#define HR_API
#endif

#endif
