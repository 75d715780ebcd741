// Errors, libbpf's log capture, argument checks and name tables shared by the handle classes.

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "addon.h"

namespace skein {

namespace {

std::mutex g_captureMu;
std::string g_capture;
// A verifier log can be megabytes (libbpf prints it through this callback); keep the end, which is
// where the verifier says what it rejected.
constexpr size_t kCaptureMax = 8 * 1024 * 1024;

int LibbpfPrint(enum libbpf_print_level level, const char *format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string line(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(line.data(), line.size(), format, args);
  line.resize(static_cast<size_t>(n));
  std::lock_guard<std::mutex> lock(g_captureMu);
  g_capture += line;
  if (g_capture.size() > kCaptureMax) g_capture.erase(0, g_capture.size() - kCaptureMax);
  return n;
}

std::string ErrnoText(int err) {
  char buf[256];
  if (libbpf_strerror(err, buf, sizeof(buf)) == 0) return buf;
  return strerror(err);
}

}  // namespace

void InstallLibbpfPrint() { libbpf_set_print(LibbpfPrint); }

void BeginCapture() {
  std::lock_guard<std::mutex> lock(g_captureMu);
  g_capture.clear();
}

std::string TakeCapture() {
  std::lock_guard<std::mutex> lock(g_captureMu);
  std::string out;
  out.swap(g_capture);
  return out;
}

void Throw(Napi::Env env, const char *code, const std::string &message, const ErrorDetails &d) {
  std::string text = std::string(code) + ": " + message;
  if (d.err != 0) text += ": " + ErrnoText(d.err) + " (errno " + std::to_string(d.err) + ")";
  Napi::Error error = Napi::Error::New(env, text);
  error.Set("code", Napi::String::New(env, code));
  if (d.err != 0) error.Set("errno", Napi::Number::New(env, d.err));
  if (!d.program.empty()) error.Set("program", Napi::String::New(env, d.program));
  if (!d.verifierLog.empty()) error.Set("verifierLog", Napi::String::New(env, d.verifierLog));
  if (!d.libbpfLog.empty()) error.Set("libbpfLog", Napi::String::New(env, d.libbpfLog));
  throw error;
}

void ThrowErrno(Napi::Env env, const char *code, const std::string &message, int err) {
  ErrorDetails d;
  d.err = err < 0 ? -err : err;
  Throw(env, code, message, d);
}

bool IsMissing(const Napi::CallbackInfo &info, size_t i) {
  return info.Length() <= i || info[i].IsUndefined() || info[i].IsNull();
}

std::string StringArg(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsString()) {
    Throw(info.Env(), kInvalidArgument, std::string(name) + " must be a string");
  }
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.empty() || s.find('\0') != std::string::npos) {
    Throw(info.Env(), kInvalidArgument, std::string(name) + " must be a non-empty string without NUL");
  }
  return s;
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsBuffer()) {
    Throw(info.Env(), kInvalidArgument, std::string(name) + " must be a Buffer");
  }
  return info[i].As<Napi::Buffer<uint8_t>>();
}

uint32_t Uint32Arg(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Throw(info.Env(), kInvalidArgument, std::string(name) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4294967295.0) || v != static_cast<double>(static_cast<uint32_t>(v))) {
    Throw(info.Env(), kInvalidArgument, std::string(name) + " must be an integer in 0..2^32-1");
  }
  return static_cast<uint32_t>(v);
}

int DupFd(Napi::Env env, int fd, const char *what) {
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dup < 0) ThrowErrno(env, kInvalidState, std::string("cannot duplicate the fd of ") + what, errno);
  return dup;
}

NetnsGuard::NetnsGuard(Napi::Env env, const std::string &path) {
  if (path.empty()) return;
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) ThrowErrno(env, kInvalidArgument, "cannot open the network namespace " + path, errno);
  self_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self_ < 0) {
    int err = errno;
    close(target);
    ThrowErrno(env, kInvalidState, "cannot open this thread's network namespace", err);
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(self_);
    self_ = -1;
    ThrowErrno(env, kInvalidArgument, "cannot enter the network namespace " + path, err);
  }
  close(target);
}

NetnsGuard::~NetnsGuard() {
  if (self_ < 0) return;
  // A thread left in the wrong namespace would do every later call there: better to stop at once.
  if (setns(self_, CLONE_NEWNET) != 0) std::abort();
  close(self_);
}

// The attach types libbpf 1.1 may not know by name (it predates tcx).
constexpr int kTcxIngress = 46;  // BPF_TCX_INGRESS, Linux 6.6
constexpr int kTcxEgress = 47;   // BPF_TCX_EGRESS

bool ParseAttachType(const std::string &name, enum bpf_attach_type *out) {
  enum bpf_prog_type ignored;
  if (name.find('/') != std::string::npos && libbpf_prog_type_by_name(name.c_str(), &ignored, out) == 0) {
    return true;
  }
  if (name == "tcx_ingress") {
    *out = static_cast<enum bpf_attach_type>(kTcxIngress);
    return true;
  }
  if (name == "tcx_egress") {
    *out = static_cast<enum bpf_attach_type>(kTcxEgress);
    return true;
  }
  for (int t = 0; t < 128; t++) {
    const char *s = libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(t));
    if (s != nullptr && name == s) {
      *out = static_cast<enum bpf_attach_type>(t);
      return true;
    }
  }
  return false;
}

std::string AttachTypeName(enum bpf_attach_type t) {
  if (static_cast<int>(t) == kTcxIngress) return "tcx_ingress";
  if (static_cast<int>(t) == kTcxEgress) return "tcx_egress";
  const char *s = libbpf_bpf_attach_type_str(t);
  return s != nullptr ? s : "attach_type_" + std::to_string(static_cast<int>(t));
}

std::string ProgTypeName(enum bpf_prog_type t) {
  const char *s = libbpf_bpf_prog_type_str(t);
  return s != nullptr ? s : "prog_type_" + std::to_string(static_cast<int>(t));
}

std::string MapTypeName(enum bpf_map_type t) {
  const char *s = libbpf_bpf_map_type_str(t);
  return s != nullptr ? s : "map_type_" + std::to_string(static_cast<int>(t));
}

}  // namespace skein
