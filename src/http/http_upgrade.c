/* placeholder: being written */
typedef int hr_placeholder_http_upgrade_t;
