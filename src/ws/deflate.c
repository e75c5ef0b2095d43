/* placeholder: being written */
typedef int hr_placeholder_deflate_t;
