// The N-API addon over libbpf: the lifecycle of BPF objects and no more (open, set rodata, load, attach,
// map operations, pin, ring buffer, test run, close). Everything above it (codecs, size checks, which
// program goes where) is TypeScript: src/datapath/.
//
// Ownership: a loaded object hands out handles (maps, programs) that own a duplicate of the kernel fd,
// and attaching returns a link handle that owns its link fd. Every handle lives on its own: closing the
// object leaves handles working, and a pinned link keeps its program attached after every fd is closed.
// close() is explicit and idempotent; the garbage collector closes whatever was forgotten.
//
// Errors are JS Errors with `code` (stable, SKEIN_BPF_*), `errno` (when the kernel or libbpf said one),
// and for load failures `program`, `verifierLog` and `libbpfLog`.

#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

namespace skein {

// Stable error codes; src/datapath/errors.ts holds the same list.
inline constexpr const char *kInvalidArgument = "SKEIN_BPF_INVALID_ARGUMENT";
inline constexpr const char *kInvalidState = "SKEIN_BPF_INVALID_STATE";
inline constexpr const char *kClosed = "SKEIN_BPF_CLOSED";
inline constexpr const char *kOpenFailed = "SKEIN_BPF_OPEN_FAILED";
inline constexpr const char *kNotFound = "SKEIN_BPF_NOT_FOUND";
inline constexpr const char *kRodataUnknownVar = "SKEIN_BPF_RODATA_UNKNOWN_VAR";
inline constexpr const char *kRodataSizeMismatch = "SKEIN_BPF_RODATA_SIZE_MISMATCH";
inline constexpr const char *kLoadFailed = "SKEIN_BPF_LOAD_FAILED";
inline constexpr const char *kAttachFailed = "SKEIN_BPF_ATTACH_FAILED";
inline constexpr const char *kMapOpFailed = "SKEIN_BPF_MAP_OP_FAILED";
inline constexpr const char *kPinFailed = "SKEIN_BPF_PIN_FAILED";
inline constexpr const char *kRingBufferFailed = "SKEIN_BPF_RINGBUF_FAILED";
inline constexpr const char *kTestRunFailed = "SKEIN_BPF_TEST_RUN_FAILED";

struct ErrorDetails {
  int err = 0;                // positive errno (or libbpf's LIBBPF_ERRNO__*), 0 if none
  std::string program;        // the program a load failure is about
  std::string verifierLog;    // the kernel verifier's log for that program
  std::string libbpfLog;      // what libbpf said during the failed call
};

// Throws a JS Error `<code>: <message>[: <strerror> (errno N)]` carrying the details as properties.
[[noreturn]] void Throw(Napi::Env env, const char *code, const std::string &message, const ErrorDetails &d = {});
[[noreturn]] void ThrowErrno(Napi::Env env, const char *code, const std::string &message, int err);

// libbpf's messages (warnings and info; debug is dropped) go to a capture buffer instead of stderr, so
// that a failure can return them. BeginCapture() clears it; TakeCapture() returns and clears it.
void InstallLibbpfPrint();
void BeginCapture();
std::string TakeCapture();

// Argument helpers: throw SKEIN_BPF_INVALID_ARGUMENT with the argument's name.
std::string StringArg(const Napi::CallbackInfo &info, size_t i, const char *name);
Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo &info, size_t i, const char *name);
uint32_t Uint32Arg(const Napi::CallbackInfo &info, size_t i, const char *name);
bool IsMissing(const Napi::CallbackInfo &info, size_t i);

// F_DUPFD_CLOEXEC, throwing on failure.
int DupFd(Napi::Env env, int fd, const char *what);

// Runs this thread in another network namespace (a /run/netns/NAME or /proc/PID/ns/net path) until the
// guard goes out of scope; an empty path does nothing. Interface indexes are per namespace, so attaching
// to an interface of a namespace the process is not in (a test's "node") needs it. Only the calling thread
// moves, for the duration of one synchronous call.
class NetnsGuard {
 public:
  NetnsGuard(Napi::Env env, const std::string &path);
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard &) = delete;
  NetnsGuard &operator=(const NetnsGuard &) = delete;

 private:
  int self_ = -1;
};

// `cgroup/connect4`, `cgroup_inet4_connect` or `tcx_ingress` -> the attach type; false if unknown.
bool ParseAttachType(const std::string &name, enum bpf_attach_type *out);
std::string AttachTypeName(enum bpf_attach_type t);
std::string ProgTypeName(enum bpf_prog_type t);
std::string MapTypeName(enum bpf_map_type t);

// Legacy tc (a clsact qdisc and a direct-action bpf filter) for kernels without tcx. A filter is named
// by interface, direction, handle and priority; there is no link to pin, the filter stays on the
// interface until detached.
struct TcTarget {
  int ifindex = 0;
  bool ingress = true;
  uint32_t handle = 1;
  uint32_t priority = 1;
  std::string netns;  // empty: this thread's namespace
};
// (ifindex, "ingress" | "egress", { handle?, priority?, netns? }) starting at argument i.
TcTarget TcTargetArgs(const Napi::CallbackInfo &info, size_t i);

// The handle classes. Each is created from C++ with an fd it takes ownership of.
class MapHandle : public Napi::ObjectWrap<MapHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewFromFd(Napi::Env env, int fd, const std::string &name);
  explicit MapHandle(const Napi::CallbackInfo &info);
  ~MapHandle() override;
  int Fd(Napi::Env env, const char *op);

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Lookup(const Napi::CallbackInfo &info);
  Napi::Value Update(const Napi::CallbackInfo &info);
  Napi::Value Delete(const Napi::CallbackInfo &info);
  Napi::Value NextKey(const Napi::CallbackInfo &info);
  Napi::Value LookupBatch(const Napi::CallbackInfo &info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo &info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo &info);
  Napi::Value Pin(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  void CheckKey(Napi::Env env, const Napi::Buffer<uint8_t> &b, size_t count, const char *what);
  void CheckValue(Napi::Env env, const Napi::Buffer<uint8_t> &b, size_t count, const char *what);

  int fd_ = -1;
  std::string name_;
  struct bpf_map_info info_ = {};
  size_t valueBufSize_ = 0;  // value_size, or per-CPU: round_up(value_size, 8) * possible CPUs
};

class ProgramHandle : public Napi::ObjectWrap<ProgramHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewFromFd(Napi::Env env, int fd, const std::string &name, int expectedAttachType);
  explicit ProgramHandle(const Napi::CallbackInfo &info);
  ~ProgramHandle() override;
  // The program fd for another handle's call (a link update); throws if closed.
  int FdFor(Napi::Env env, const char *op) { return Fd(env, op); }
  const std::string &Name() const { return name_; }

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo &info);
  Napi::Value AttachTcx(const Napi::CallbackInfo &info);
  Napi::Value AttachTracing(const Napi::CallbackInfo &info);
  Napi::Value AttachTc(const Napi::CallbackInfo &info);
  Napi::Value AttachRawTracepoint(const Napi::CallbackInfo &info);
  Napi::Value TestRun(const Napi::CallbackInfo &info);
  Napi::Value Pin(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  int Fd(Napi::Env env, const char *op);

  int fd_ = -1;
  std::string name_;
  int expectedAttachType_ = -1;  // -1: unknown (a program opened from a pin)
};

class LinkHandle : public Napi::ObjectWrap<LinkHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Object NewFromFd(Napi::Env env, int fd, const std::string &description);
  explicit LinkHandle(const Napi::CallbackInfo &info);
  ~LinkHandle() override;

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Pin(const Napi::CallbackInfo &info);
  Napi::Value Update(const Napi::CallbackInfo &info);
  Napi::Value Detach(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  int Fd(Napi::Env env, const char *op);

  int fd_ = -1;
  std::string description_;
};

class ObjectHandle : public Napi::ObjectWrap<ObjectHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ObjectHandle(const Napi::CallbackInfo &info);
  ~ObjectHandle() override;

 private:
  Napi::Value Maps(const Napi::CallbackInfo &info);
  Napi::Value Programs(const Napi::CallbackInfo &info);
  Napi::Value Rodata(const Napi::CallbackInfo &info);
  Napi::Value SetRodata(const Napi::CallbackInfo &info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo &info);
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value Map(const Napi::CallbackInfo &info);
  Napi::Value Program(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  struct bpf_object *Obj(Napi::Env env, const char *op);
  struct bpf_map *FindMap(Napi::Env env, const std::string &name);
  struct bpf_map *RodataMap();

  struct bpf_object *obj_ = nullptr;
  std::string path_;
  bool loaded_ = false;
};

class RingBufferHandle : public Napi::ObjectWrap<RingBufferHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit RingBufferHandle(const Napi::CallbackInfo &info);
  ~RingBufferHandle() override;

  // Called by libbpf for each record, on whichever thread polls (never two at once: see busy_).
  static int OnSample(void *ctx, void *data, size_t size);
  struct ring_buffer *rb_ = nullptr;
  std::vector<std::vector<uint8_t>> pending_;
  bool busy_ = false;     // an async poll is running on a worker thread
  bool closing_ = false;  // close() came during a poll: free when it ends
  void Free();

 private:
  Napi::Value Consume(const Napi::CallbackInfo &info);
  Napi::Value Poll(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  int fd_ = -1;
};

// Constructors, kept for creating instances from C++.
struct AddonData {
  Napi::FunctionReference map;
  Napi::FunctionReference program;
  Napi::FunctionReference link;
};

AddonData *GetAddonData(Napi::Env env);

}  // namespace skein
