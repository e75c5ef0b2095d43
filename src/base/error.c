/* hr_strerror / hr_err_name from the one table in include/herald/error.h. */
#include <string.h>

#include "herald/error.h"

const char *hr_strerror(int err)
{
    switch (err) {
#define HR_ERR_STR_(name, value, msg)                                                              \
    case value:                                                                                    \
        return msg;
        HR_ERRNO_MAP(HR_ERR_STR_)
#undef HR_ERR_STR_
    default:
        return err < 0 && err > -4000 ? strerror(-err) : "unknown error";
    }
}

const char *hr_err_name(int err)
{
    switch (err) {
#define HR_ERR_NAME_(name, value, msg)                                                             \
    case value:                                                                                    \
        return "HR_" #name;
        HR_ERRNO_MAP(HR_ERR_NAME_)
#undef HR_ERR_NAME_
    default:
        return "HR_UNKNOWN";
    }
}
