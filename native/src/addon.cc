// Module entry: the exported classes and the functions that work on bpffs paths.

#include <linux/membarrier.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

namespace skein {

AddonData *GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

namespace {

// Refuses paths outside bpffs: pin and unpin work there only, and unpin must never delete a real file.
void RequireBpffs(Napi::Env env, const std::string &path, const char *op) {
  std::string dir = path;
  size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
  struct statfs st;
  if (statfs(dir.c_str(), &st) != 0) ThrowErrno(env, kPinFailed, std::string("cannot ") + op + " " + path, errno);
  if (static_cast<unsigned long>(st.f_type) != BPF_FS_MAGIC) {
    Throw(env, kPinFailed,
          std::string("cannot ") + op + " " + path + ": " + dir + " is not on a BPF filesystem (mount -t bpf bpf " +
              dir + ")");
  }
}

int GetPinned(Napi::Env env, const std::string &path, const char *what) {
  RequireBpffs(env, path, "open");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, kPinFailed, std::string("cannot open the pinned ") + what + " " + path, errno);
  return fd;
}

// openPinnedMap(path) -> BpfMap
Napi::Value OpenPinnedMap(const Napi::CallbackInfo &info) {
  std::string path = StringArg(info, 0, "path");
  return MapHandle::NewFromFd(info.Env(), GetPinned(info.Env(), path, "map"), path);
}

// openPinnedProgram(path) -> BpfProgram (its attach type is unknown: attachCgroup needs one)
Napi::Value OpenPinnedProgram(const Napi::CallbackInfo &info) {
  std::string path = StringArg(info, 0, "path");
  return ProgramHandle::NewFromFd(info.Env(), GetPinned(info.Env(), path, "program"), path, -1);
}

// openPinnedLink(path) -> BpfLink
Napi::Value OpenPinnedLink(const Napi::CallbackInfo &info) {
  std::string path = StringArg(info, 0, "path");
  return LinkHandle::NewFromFd(info.Env(), GetPinned(info.Env(), path, "link"), "pinned link " + path);
}

// unpin(path) -> true if it was there. Removing the last pin of a link whose fds are closed detaches it.
Napi::Value Unpin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  RequireBpffs(env, path, "unpin");
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, kPinFailed, "cannot unpin " + path, errno);
  }
  return Napi::Boolean::New(env, true);
}

// isBpffs(path) -> whether path is on a BPF filesystem
Napi::Value IsBpffs(const Napi::CallbackInfo &info) {
  std::string path = StringArg(info, 0, "path");
  struct statfs st;
  bool yes = statfs(path.c_str(), &st) == 0 && static_cast<unsigned long>(st.f_type) == BPF_FS_MAGIC;
  return Napi::Boolean::New(info.Env(), yes);
}

// Waits for an RCU grace period on a worker thread: membarrier(MEMBARRIER_CMD_GLOBAL) is synchronize_rcu(),
// and BPF programs run inside RCU read-side sections, so when it returns every program run that could
// have read a map value replaced before the call has ended (a retired slot set is then safe to delete).
class SynchronizeRcuWorker : public Napi::AsyncWorker {
 public:
  explicit SynchronizeRcuWorker(Napi::Env env)
      : Napi::AsyncWorker(env, "skein:bpf:synchronize-rcu"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0) err_ = errno;
  }
  void OnOK() override {
    if (err_ == 0) {
      deferred_.Resolve(Env().Undefined());
      return;
    }
    try {
      ThrowErrno(Env(), kInvalidState, "membarrier(MEMBARRIER_CMD_GLOBAL) failed", err_);
    } catch (const Napi::Error &e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  int err_ = 0;
  Napi::Promise::Deferred deferred_;
};

// synchronizeRcu() -> Promise<void>
Napi::Value SynchronizeRcu(const Napi::CallbackInfo &info) {
  auto *worker = new SynchronizeRcuWorker(info.Env());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// detachTc(ifindex, direction, { handle?, priority?, netns? }) -> true if a filter was there.
Napi::Value DetachTc(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  TcTarget t = TcTargetArgs(info, 0);
  int err;
  {
    NetnsGuard in(env, t.netns);
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = t.ifindex,
                .attach_point = t.ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t.handle, .priority = t.priority);
    err = bpf_tc_detach(&hook, &opts);
  }
  if (err == -ENOENT || err == -ENODEV || err == -EINVAL) return Napi::Boolean::New(env, false);
  if (err != 0) ThrowErrno(env, kAttachFailed, "cannot detach the tc filter on ifindex " + std::to_string(t.ifindex), err);
  return Napi::Boolean::New(env, true);
}

// queryTc(ifindex, direction, { handle?, priority?, netns? }) -> the attached program's id, 0 if none.
Napi::Value QueryTc(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  TcTarget t = TcTargetArgs(info, 0);
  int err;
  uint32_t id = 0;
  {
    NetnsGuard in(env, t.netns);
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = t.ifindex,
                .attach_point = t.ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t.handle, .priority = t.priority);
    err = bpf_tc_query(&hook, &opts);
    id = opts.prog_id;
  }
  if (err == -ENOENT || err == -ENODEV || err == -EINVAL) return Napi::Number::New(env, 0);
  if (err != 0) ThrowErrno(env, kAttachFailed, "cannot query the tc filter on ifindex " + std::to_string(t.ifindex), err);
  return Napi::Number::New(env, id);
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  auto *data = new AddonData();
  data->map = Napi::Persistent(MapHandle::Init(env));
  data->program = Napi::Persistent(ProgramHandle::Init(env));
  data->link = Napi::Persistent(LinkHandle::Init(env));
  env.SetInstanceData<AddonData>(data);
  // Only objects and ring buffers are constructed from JS; maps, programs and links come from them.
  exports.Set("BpfObject", ObjectHandle::Init(env));
  exports.Set("BpfRingBuffer", RingBufferHandle::Init(env));
  exports.Set("openPinnedMap", Napi::Function::New<OpenPinnedMap>(env, "openPinnedMap"));
  exports.Set("openPinnedProgram", Napi::Function::New<OpenPinnedProgram>(env, "openPinnedProgram"));
  exports.Set("openPinnedLink", Napi::Function::New<OpenPinnedLink>(env, "openPinnedLink"));
  exports.Set("unpin", Napi::Function::New<Unpin>(env, "unpin"));
  exports.Set("isBpffs", Napi::Function::New<IsBpffs>(env, "isBpffs"));
  exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
  exports.Set("detachTc", Napi::Function::New<DetachTc>(env, "detachTc"));
  exports.Set("queryTc", Napi::Function::New<QueryTc>(env, "queryTc"));
  exports.Set("synchronizeRcu", Napi::Function::New<SynchronizeRcu>(env, "synchronizeRcu"));
  return exports;
}

}  // namespace

}  // namespace skein

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return skein::InitModule(env, exports); }

NODE_API_MODULE(skein_bpf, Init)
