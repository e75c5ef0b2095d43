/* placeholder: being written */
typedef int hr_placeholder_utf8_t;
