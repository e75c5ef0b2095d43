/* placeholder: being written */
typedef int hr_placeholder_ws_frame_t;
