// Names the calling thread, as `top -H`, /proc/PID/task/TID/comm and the
// benchmarks show it. Linux keeps 15 bytes; a longer name is cut there.
#pragma once

#include <pthread.h>

#include <string>

namespace drover {

inline void name_this_thread(const std::string& name) {
  (void)::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace drover
