// Map, program and link handles: each owns one kernel fd.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"

namespace skein {

namespace {

bool IsPerCpu(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}

void PinFd(Napi::Env env, int fd, const std::string &path, const std::string &what) {
  if (bpf_obj_pin(fd, path.c_str()) != 0) {
    ThrowErrno(env, kPinFailed, "cannot pin " + what + " at " + path, errno);
  }
}

std::string PinPathArg(const Napi::CallbackInfo &info) { return StringArg(info, 0, "path"); }

}  // namespace

// --- maps -------------------------------------------------------------------------------------------

Napi::Function MapHandle::Init(Napi::Env env) {
  return DefineClass(env, "BpfMap",
                     {
                         InstanceMethod<&MapHandle::Info>("info"),
                         InstanceMethod<&MapHandle::Lookup>("lookup"),
                         InstanceMethod<&MapHandle::Update>("update"),
                         InstanceMethod<&MapHandle::Delete>("delete"),
                         InstanceMethod<&MapHandle::NextKey>("nextKey"),
                         InstanceMethod<&MapHandle::LookupBatch>("lookupBatch"),
                         InstanceMethod<&MapHandle::UpdateBatch>("updateBatch"),
                         InstanceMethod<&MapHandle::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&MapHandle::Pin>("pin"),
                         InstanceMethod<&MapHandle::Close>("close"),
                     });
}

Napi::Object MapHandle::NewFromFd(Napi::Env env, int fd, const std::string &name) {
  return GetAddonData(env)->map.New({Napi::Number::New(env, fd), Napi::String::New(env, name)});
}

// Only NewFromFd constructs maps: (fd it owns from now on, name for messages).
MapHandle::MapHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<MapHandle>(info) {
  Napi::Env env = info.Env();
  fd_ = static_cast<int>(Uint32Arg(info, 0, "fd"));
  name_ = StringArg(info, 1, "name");
  uint32_t len = sizeof(info_);
  if (bpf_obj_get_info_by_fd(fd_, &info_, &len) != 0) {
    int err = errno;
    close(fd_);
    fd_ = -1;
    ThrowErrno(env, kInvalidState, "cannot read the info of map " + name_, err);
  }
  valueBufSize_ = info_.value_size;
  if (IsPerCpu(info_.type)) {
    int cpus = libbpf_num_possible_cpus();
    valueBufSize_ = ((info_.value_size + 7) / 8) * 8 * static_cast<size_t>(cpus > 0 ? cpus : 1);
  }
}

MapHandle::~MapHandle() {
  if (fd_ >= 0) close(fd_);
}

int MapHandle::Fd(Napi::Env env, const char *op) {
  if (fd_ < 0) Throw(env, kClosed, std::string("cannot ") + op + " map " + name_ + ": the handle is closed");
  return fd_;
}

void MapHandle::CheckKey(Napi::Env env, const Napi::Buffer<uint8_t> &b, size_t count, const char *what) {
  if (b.Length() != info_.key_size * count) {
    Throw(env, kInvalidArgument,
          std::string(what) + " for map " + name_ + " has " + std::to_string(b.Length()) + " bytes, expected " +
              std::to_string(info_.key_size * count));
  }
}

void MapHandle::CheckValue(Napi::Env env, const Napi::Buffer<uint8_t> &b, size_t count, const char *what) {
  if (b.Length() != valueBufSize_ * count) {
    Throw(env, kInvalidArgument,
          std::string(what) + " for map " + name_ + " has " + std::to_string(b.Length()) + " bytes, expected " +
              std::to_string(valueBufSize_ * count));
  }
}

// { name, type, id, keySize, valueSize, valueBufferSize, maxEntries, flags }: from the kernel.
Napi::Value MapHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Fd(env, "describe");
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name_);
  o.Set("kernelName", info_.name);
  o.Set("type", MapTypeName(static_cast<enum bpf_map_type>(info_.type)));
  o.Set("id", info_.id);
  o.Set("keySize", info_.key_size);
  o.Set("valueSize", info_.value_size);
  o.Set("valueBufferSize", static_cast<double>(valueBufSize_));
  o.Set("maxEntries", info_.max_entries);
  o.Set("flags", info_.map_flags);
  return o;
}

// lookup(key) -> Buffer | undefined
Napi::Value MapHandle::Lookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> key = BufferArg(info, 0, "key");
  int fd = Fd(env, "look up in");
  CheckKey(env, key, 1, "key");
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, valueBufSize_);
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data()) != 0) {
    if (errno == ENOENT) return env.Undefined();
    ThrowErrno(env, kMapOpFailed, "lookup in map " + name_ + " failed", errno);
  }
  return value;
}

// update(key, value, flags = BPF_ANY)
Napi::Value MapHandle::Update(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> key = BufferArg(info, 0, "key");
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, "value");
  uint64_t flags = IsMissing(info, 2) ? uint64_t{BPF_ANY} : Uint32Arg(info, 2, "flags");
  int fd = Fd(env, "update");
  CheckKey(env, key, 1, "key");
  CheckValue(env, value, 1, "value");
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags) != 0) {
    ThrowErrno(env, kMapOpFailed, "update of map " + name_ + " failed", errno);
  }
  return env.Undefined();
}

// delete(key) -> true if it was there
Napi::Value MapHandle::Delete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> key = BufferArg(info, 0, "key");
  int fd = Fd(env, "delete from");
  CheckKey(env, key, 1, "key");
  if (bpf_map_delete_elem(fd, key.Data()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, kMapOpFailed, "delete from map " + name_ + " failed", errno);
  }
  return Napi::Boolean::New(env, true);
}

// nextKey(key | undefined) -> the key after it (the first key for undefined), or undefined at the end
Napi::Value MapHandle::NextKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "iterate");
  const void *prev = nullptr;
  Napi::Buffer<uint8_t> key;
  if (!IsMissing(info, 0)) {
    key = BufferArg(info, 0, "key");
    CheckKey(env, key, 1, "key");
    prev = key.Data();
  }
  Napi::Buffer<uint8_t> next = Napi::Buffer<uint8_t>::New(env, info_.key_size);
  if (bpf_map_get_next_key(fd, prev, next.Data()) != 0) {
    if (errno == ENOENT) return env.Undefined();
    ThrowErrno(env, kMapOpFailed, "iteration of map " + name_ + " failed", errno);
  }
  return next;
}

// lookupBatch(maxCount, cursor?) -> { count, keys, values, cursor? }: up to maxCount entries after the
// cursor (from the start without one); no cursor in the result means the map has been read to its end.
Napi::Value MapHandle::LookupBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t max = Uint32Arg(info, 0, "maxCount");
  int fd = Fd(env, "read a batch from");
  if (max == 0) Throw(env, kInvalidArgument, "maxCount must be at least 1");
  // The batch token is opaque: a bucket index for hashes, a key for arrays. Key size (at least 8) fits both.
  size_t tokenSize = info_.key_size > 8 ? info_.key_size : 8;
  std::vector<uint8_t> in(tokenSize), out(tokenSize);
  bool hasCursor = !IsMissing(info, 1);
  if (hasCursor) {
    Napi::Buffer<uint8_t> c = BufferArg(info, 1, "cursor");
    if (c.Length() != tokenSize) Throw(env, kInvalidArgument, "cursor is not one lookupBatch returned");
    memcpy(in.data(), c.Data(), tokenSize);
  }
  std::vector<uint8_t> keys(static_cast<size_t>(info_.key_size) * max);
  std::vector<uint8_t> values(valueBufSize_ * max);
  uint32_t count = max;
  bool done = false;
  if (bpf_map_lookup_batch(fd, hasCursor ? in.data() : nullptr, out.data(), keys.data(), values.data(), &count,
                           nullptr) != 0) {
    if (errno != ENOENT) ThrowErrno(env, kMapOpFailed, "batch lookup in map " + name_ + " failed", errno);
    done = true;
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("count", count);
  r.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), static_cast<size_t>(info_.key_size) * count));
  r.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), valueBufSize_ * count));
  if (!done) r.Set("cursor", Napi::Buffer<uint8_t>::Copy(env, out.data(), tokenSize));
  return r;
}

// updateBatch(keys, values, flags = BPF_ANY) -> count: keys and values are packed back to back.
Napi::Value MapHandle::UpdateBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> keys = BufferArg(info, 0, "keys");
  Napi::Buffer<uint8_t> values = BufferArg(info, 1, "values");
  uint64_t flags = IsMissing(info, 2) ? uint64_t{BPF_ANY} : Uint32Arg(info, 2, "flags");
  int fd = Fd(env, "update a batch in");
  if (info_.key_size == 0 || keys.Length() % info_.key_size != 0) CheckKey(env, keys, 1, "keys");
  uint32_t count = static_cast<uint32_t>(keys.Length() / info_.key_size);
  CheckValue(env, values, count, "values");
  if (count == 0) return Napi::Number::New(env, 0);
  struct bpf_map_batch_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.elem_flags = flags;
  if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &count, &opts) != 0) {
    ThrowErrno(env, kMapOpFailed,
               "batch update of map " + name_ + " failed after " + std::to_string(count) + " entries", errno);
  }
  return Napi::Number::New(env, count);
}

// deleteBatch(keys) -> count. Every key must exist (ENOENT otherwise, after deleting those before it).
Napi::Value MapHandle::DeleteBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> keys = BufferArg(info, 0, "keys");
  int fd = Fd(env, "delete a batch from");
  if (info_.key_size == 0 || keys.Length() % info_.key_size != 0) CheckKey(env, keys, 1, "keys");
  uint32_t count = static_cast<uint32_t>(keys.Length() / info_.key_size);
  if (count == 0) return Napi::Number::New(env, 0);
  if (bpf_map_delete_batch(fd, keys.Data(), &count, nullptr) != 0) {
    ThrowErrno(env, kMapOpFailed,
               "batch delete from map " + name_ + " failed after " + std::to_string(count) + " entries", errno);
  }
  return Napi::Number::New(env, count);
}

Napi::Value MapHandle::Pin(const Napi::CallbackInfo &info) {
  std::string path = PinPathArg(info);
  PinFd(info.Env(), Fd(info.Env(), "pin"), path, "map " + name_);
  return info.Env().Undefined();
}

Napi::Value MapHandle::Close(const Napi::CallbackInfo &info) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  return info.Env().Undefined();
}

// --- programs ---------------------------------------------------------------------------------------

Napi::Function ProgramHandle::Init(Napi::Env env) {
  return DefineClass(env, "BpfProgram",
                     {
                         InstanceMethod<&ProgramHandle::Info>("info"),
                         InstanceMethod<&ProgramHandle::AttachCgroup>("attachCgroup"),
                         InstanceMethod<&ProgramHandle::AttachTcx>("attachTcx"),
                         InstanceMethod<&ProgramHandle::AttachTracing>("attachTracing"),
                         InstanceMethod<&ProgramHandle::AttachTc>("attachTc"),
                         InstanceMethod<&ProgramHandle::AttachRawTracepoint>("attachRawTracepoint"),
                         InstanceMethod<&ProgramHandle::TestRun>("testRun"),
                         InstanceMethod<&ProgramHandle::Pin>("pin"),
                         InstanceMethod<&ProgramHandle::Close>("close"),
                     });
}

Napi::Object ProgramHandle::NewFromFd(Napi::Env env, int fd, const std::string &name, int expectedAttachType) {
  return GetAddonData(env)->program.New(
      {Napi::Number::New(env, fd), Napi::String::New(env, name), Napi::Number::New(env, expectedAttachType)});
}

ProgramHandle::ProgramHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ProgramHandle>(info) {
  fd_ = static_cast<int>(Uint32Arg(info, 0, "fd"));
  name_ = StringArg(info, 1, "name");
  expectedAttachType_ = info[2].As<Napi::Number>().Int32Value();
}

ProgramHandle::~ProgramHandle() {
  if (fd_ >= 0) close(fd_);
}

int ProgramHandle::Fd(Napi::Env env, const char *op) {
  if (fd_ < 0) Throw(env, kClosed, std::string("cannot ") + op + " program " + name_ + ": the handle is closed");
  return fd_;
}

// { name, kernelName, type, id, tag, attachType? }
Napi::Value ProgramHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "describe");
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof(pi));
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd, &pi, &len) != 0) {
    ThrowErrno(env, kInvalidState, "cannot read the info of program " + name_, errno);
  }
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name_);
  o.Set("kernelName", pi.name);
  o.Set("type", ProgTypeName(static_cast<enum bpf_prog_type>(pi.type)));
  o.Set("id", pi.id);
  o.Set("tag", tag);
  if (expectedAttachType_ >= 0) {
    o.Set("attachType", AttachTypeName(static_cast<enum bpf_attach_type>(expectedAttachType_)));
  }
  return o;
}

// attachCgroup(cgroupPath, attachType?) -> Link. The attach type defaults to the program's own (its
// section: cgroup/connect4 -> cgroup_inet4_connect); a program opened from a pin must name it.
Napi::Value ProgramHandle::AttachCgroup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "cgroupPath");
  int fd = Fd(env, "attach");
  enum bpf_attach_type type;
  if (!IsMissing(info, 1)) {
    std::string name = StringArg(info, 1, "attachType");
    if (!ParseAttachType(name, &type)) Throw(env, kInvalidArgument, "unknown attach type " + name);
  } else if (expectedAttachType_ >= 0) {
    type = static_cast<enum bpf_attach_type>(expectedAttachType_);
  } else {
    Throw(env, kInvalidArgument, "program " + name_ + " has no known attach type: pass one");
  }
  int cg = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) ThrowErrno(env, kAttachFailed, "cannot open cgroup " + path, errno);
  int link = bpf_link_create(fd, cg, type, nullptr);
  int err = errno;
  close(cg);
  std::string what = "program " + name_ + " (" + AttachTypeName(type) + ") on cgroup " + path;
  if (link < 0) ThrowErrno(env, kAttachFailed, "cannot attach " + what, err);
  return LinkHandle::NewFromFd(env, link, what);
}

// attachTcx(ifindex, "ingress" | "egress", netnsPath?) -> Link. tcx (Linux 6.6): a link, so it can be
// pinned, and several programs chain on one interface without replacing each other. With netnsPath the
// ifindex is one of that network namespace (the link keeps working from any namespace).
Napi::Value ProgramHandle::AttachTcx(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = Uint32Arg(info, 0, "ifindex");
  std::string dir = StringArg(info, 1, "direction");
  std::string netns = IsMissing(info, 2) ? "" : StringArg(info, 2, "netnsPath");
  int fd = Fd(env, "attach");
  enum bpf_attach_type type;
  if (dir != "ingress" && dir != "egress") Throw(env, kInvalidArgument, "direction must be ingress or egress");
  ParseAttachType(dir == "ingress" ? "tcx_ingress" : "tcx_egress", &type);
  if (ifindex == 0) Throw(env, kInvalidArgument, "ifindex must be at least 1");
  std::string what = "program " + name_ + " (tcx " + dir + ") on ifindex " + std::to_string(ifindex) +
                     (netns.empty() ? "" : " of " + netns);
  int link;
  int err;
  {
    NetnsGuard in(env, netns);
    link = bpf_link_create(fd, static_cast<int>(ifindex), type, nullptr);
    err = errno;
  }
  if (link < 0) ThrowErrno(env, kAttachFailed, "cannot attach " + what, err);
  return LinkHandle::NewFromFd(env, link, what);
}

TcTarget TcTargetArgs(const Napi::CallbackInfo &info, size_t i) {
  Napi::Env env = info.Env();
  TcTarget t;
  uint32_t ifindex = Uint32Arg(info, i, "ifindex");
  if (ifindex == 0 || ifindex > 0x7fffffff) Throw(env, kInvalidArgument, "ifindex must be in 1..2^31-1");
  t.ifindex = static_cast<int>(ifindex);
  std::string dir = StringArg(info, i + 1, "direction");
  if (dir != "ingress" && dir != "egress") Throw(env, kInvalidArgument, "direction must be ingress or egress");
  t.ingress = dir == "ingress";
  if (!IsMissing(info, i + 2)) {
    if (!info[i + 2].IsObject()) Throw(env, kInvalidArgument, "tc options must be an object");
    Napi::Object o = info[i + 2].As<Napi::Object>();
    auto num = [&](const char *key, uint32_t *out, uint32_t max) {
      Napi::Value v = o.Get(key);
      if (v.IsUndefined()) return;
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 1 && d <= max) || d != static_cast<double>(static_cast<uint32_t>(d))) {
        Throw(env, kInvalidArgument, std::string("tc option ") + key + " must be an integer in 1.." + std::to_string(max));
      }
      *out = static_cast<uint32_t>(d);
    };
    num("handle", &t.handle, 0xffffffffu);
    num("priority", &t.priority, 0xffffu);
    Napi::Value ns = o.Get("netns");
    if (!ns.IsUndefined()) {
      if (!ns.IsString()) Throw(env, kInvalidArgument, "tc option netns must be a string");
      t.netns = ns.As<Napi::String>().Utf8Value();
    }
  }
  return t;
}

// attachTc(ifindex, direction, { handle?, priority?, netns? }): a direct-action filter on the interface's
// clsact qdisc (made if missing, never removed: another program may use it), replacing the filter of that
// handle and priority atomically. For kernels before tcx (6.6).
Napi::Value ProgramHandle::AttachTc(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "attach");
  TcTarget t = TcTargetArgs(info, 0);
  std::string what = "program " + name_ + " (tc " + (t.ingress ? "ingress" : "egress") + ") on ifindex " +
                     std::to_string(t.ifindex) + (t.netns.empty() ? "" : " of " + t.netns);
  int err;
  {
    NetnsGuard in(env, t.netns);
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = t.ifindex,
                .attach_point = t.ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    err = bpf_tc_hook_create(&hook);
    if (err == 0 || err == -EEXIST) {
      LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = fd, .flags = BPF_TC_F_REPLACE, .handle = t.handle,
                  .priority = t.priority);
      err = bpf_tc_attach(&hook, &opts);
    }
  }
  if (err != 0) ThrowErrno(env, kAttachFailed, "cannot attach " + what, err);
  return env.Undefined();
}

// attachTracing() -> Link: a tracing program (fentry/fexit) at the kernel function its section names.
// attachRawTracepoint(name) -> Link: a raw tracepoint program at the kernel tracepoint `name` (sys_enter).
Napi::Value ProgramHandle::AttachRawTracepoint(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string tp = StringArg(info, 0, "tracepoint");
  int fd = Fd(env, "attach");
  int link = bpf_raw_tracepoint_open(tp.c_str(), fd);
  std::string what = "program " + name_ + " (raw tracepoint " + tp + ")";
  if (link < 0) ThrowErrno(env, kAttachFailed, "cannot attach " + what, errno);
  return LinkHandle::NewFromFd(env, link, what);
}

Napi::Value ProgramHandle::AttachTracing(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "attach");
  if (expectedAttachType_ < 0) Throw(env, kInvalidArgument, "program " + name_ + " has no known attach type");
  enum bpf_attach_type type = static_cast<enum bpf_attach_type>(expectedAttachType_);
  if (type != BPF_TRACE_FENTRY && type != BPF_TRACE_FEXIT) {
    Throw(env, kInvalidArgument, "program " + name_ + " is not an fentry/fexit program");
  }
  int link = bpf_link_create(fd, 0, type, nullptr);
  std::string what = "program " + name_ + " (" + AttachTypeName(type) + ")";
  if (link < 0) ThrowErrno(env, kAttachFailed, "cannot attach " + what, errno);
  return LinkHandle::NewFromFd(env, link, what);
}

// testRun({ data, repeat?, dataSizeOut?, ctx? }) -> { retval, data, durationNs }: BPF_PROG_TEST_RUN.
Napi::Value ProgramHandle::TestRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "test-run");
  if (IsMissing(info, 0) || !info[0].IsObject()) Throw(env, kInvalidArgument, "testRun takes { data, ... }");
  Napi::Object opts = info[0].As<Napi::Object>();
  Napi::Value data = opts.Get("data");
  if (!data.IsBuffer()) Throw(env, kInvalidArgument, "testRun: data must be a Buffer");
  Napi::Buffer<uint8_t> in = data.As<Napi::Buffer<uint8_t>>();
  uint32_t repeat = 1;
  uint32_t outSize = static_cast<uint32_t>(in.Length()) + 256;
  Napi::Value v = opts.Get("repeat");
  if (v.IsNumber()) repeat = v.As<Napi::Number>().Uint32Value();
  v = opts.Get("dataSizeOut");
  if (v.IsNumber()) outSize = v.As<Napi::Number>().Uint32Value();
  std::vector<uint8_t> out(outSize);
  struct bpf_test_run_opts t;
  memset(&t, 0, sizeof(t));
  t.sz = sizeof(t);
  t.data_in = in.Data();
  t.data_size_in = static_cast<uint32_t>(in.Length());
  t.data_out = out.data();
  t.data_size_out = outSize;
  t.repeat = static_cast<int>(repeat);
  Napi::Buffer<uint8_t> ctx;
  v = opts.Get("ctx");
  if (v.IsBuffer()) {
    ctx = v.As<Napi::Buffer<uint8_t>>();
    t.ctx_in = ctx.Data();
    t.ctx_size_in = static_cast<uint32_t>(ctx.Length());
  }
  if (bpf_prog_test_run_opts(fd, &t) != 0) {
    ThrowErrno(env, kTestRunFailed, "test run of program " + name_ + " failed", errno);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("retval", Napi::Number::New(env, static_cast<int32_t>(t.retval)));
  r.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), t.data_size_out < outSize ? t.data_size_out : outSize));
  r.Set("durationNs", t.duration);
  return r;
}

Napi::Value ProgramHandle::Pin(const Napi::CallbackInfo &info) {
  std::string path = PinPathArg(info);
  PinFd(info.Env(), Fd(info.Env(), "pin"), path, "program " + name_);
  return info.Env().Undefined();
}

Napi::Value ProgramHandle::Close(const Napi::CallbackInfo &info) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  return info.Env().Undefined();
}

// --- links ------------------------------------------------------------------------------------------

Napi::Function LinkHandle::Init(Napi::Env env) {
  return DefineClass(env, "BpfLink",
                     {
                         InstanceMethod<&LinkHandle::Info>("info"),
                         InstanceMethod<&LinkHandle::Pin>("pin"),
                         InstanceMethod<&LinkHandle::Update>("update"),
                         InstanceMethod<&LinkHandle::Detach>("detach"),
                         InstanceMethod<&LinkHandle::Close>("close"),
                     });
}

Napi::Object LinkHandle::NewFromFd(Napi::Env env, int fd, const std::string &description) {
  return GetAddonData(env)->link.New({Napi::Number::New(env, fd), Napi::String::New(env, description)});
}

LinkHandle::LinkHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<LinkHandle>(info) {
  fd_ = static_cast<int>(Uint32Arg(info, 0, "fd"));
  description_ = StringArg(info, 1, "description");
}

LinkHandle::~LinkHandle() {
  if (fd_ >= 0) close(fd_);
}

int LinkHandle::Fd(Napi::Env env, const char *op) {
  if (fd_ < 0) Throw(env, kClosed, std::string("cannot ") + op + " link of " + description_ + ": the handle is closed");
  return fd_;
}

// { id, programId, description }
Napi::Value LinkHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "describe");
  struct bpf_link_info li;
  memset(&li, 0, sizeof(li));
  uint32_t len = sizeof(li);
  if (bpf_obj_get_info_by_fd(fd, &li, &len) != 0) {
    ThrowErrno(env, kInvalidState, "cannot read the info of link of " + description_, errno);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", li.id);
  o.Set("programId", li.prog_id);
  o.Set("description", description_);
  return o;
}

Napi::Value LinkHandle::Pin(const Napi::CallbackInfo &info) {
  std::string path = PinPathArg(info);
  PinFd(info.Env(), Fd(info.Env(), "pin"), path, "link of " + description_);
  return info.Env().Undefined();
}

// update(program): swaps the link's program atomically (BPF_LINK_UPDATE): no packet sees neither.
Napi::Value LinkHandle::Update(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (IsMissing(info, 0) || !info[0].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(GetAddonData(env)->program.Value())) {
    Throw(env, kInvalidArgument, "update takes a BpfProgram");
  }
  ProgramHandle *prog = Napi::ObjectWrap<ProgramHandle>::Unwrap(info[0].As<Napi::Object>());
  int progFd = prog->FdFor(env, "attach");
  if (bpf_link_update(Fd(env, "update"), progFd, nullptr) != 0) {
    ThrowErrno(env, kAttachFailed, "cannot update " + description_ + " to program " + prog->Name(), errno);
  }
  return env.Undefined();
}

// detach(): detaches the program now, even if the link is pinned (the pin then holds a dead link).
Napi::Value LinkHandle::Detach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (bpf_link_detach(Fd(env, "detach")) != 0) {
    ThrowErrno(env, kAttachFailed, "cannot detach " + description_, errno);
  }
  return env.Undefined();
}

// close(): closes this fd; the program stays attached while a pin (or another fd) holds the link.
Napi::Value LinkHandle::Close(const Napi::CallbackInfo &info) {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  return info.Env().Undefined();
}

}  // namespace skein
