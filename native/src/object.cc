// ObjectHandle: one BPF ELF object, from open to load; then it hands out map and program handles.

#include <bpf/btf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"

namespace skein {

namespace {

// The verifier log libbpf prints for a failed program:
//   prog 'NAME': -- BEGIN PROG LOAD LOG --\n<log>-- END PROG LOAD LOG --\n
bool ExtractVerifierLog(const std::string &log, std::string *program, std::string *verifier) {
  const std::string begin = "': -- BEGIN PROG LOAD LOG --\n";
  const std::string end = "-- END PROG LOAD LOG --";
  size_t b = log.find(begin);
  if (b == std::string::npos) return false;
  size_t nameStart = log.rfind("prog '", b);
  if (nameStart != std::string::npos) *program = log.substr(nameStart + 6, b - nameStart - 6);
  size_t start = b + begin.size();
  size_t e = log.find(end, start);
  *verifier = log.substr(start, e == std::string::npos ? std::string::npos : e - start);
  return true;
}

// `prog 'NAME': BPF program load failed` names the program even when there is no log (E2BIG, EPERM).
std::string FailedProgram(const std::string &log) {
  const std::string marker = "': BPF program load failed";
  size_t m = log.find(marker);
  if (m == std::string::npos) return "";
  size_t nameStart = log.rfind("prog '", m);
  return nameStart == std::string::npos ? "" : log.substr(nameStart + 6, m - nameStart - 6);
}

// The first thing libbpf complained about (the cause; what follows are its consequences), without the
// "libbpf: " prefix.
std::string FirstLine(const std::string &log) {
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    std::string line = log.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.rfind("libbpf: ", 0) == 0) line.erase(0, 8);
    if (!line.empty()) return line;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

// The attach type the program was built for, or -1 if it has none: 0 is BPF_CGROUP_INET_INGRESS, but for
// anything but a cgroup_skb program it only means "not set" (a tc classifier, say).
int ExpectedAttachType(const struct bpf_program *prog) {
  enum bpf_attach_type t = bpf_program__expected_attach_type(prog);
  if (t == 0 && bpf_program__type(prog) != BPF_PROG_TYPE_CGROUP_SKB) return -1;
  return static_cast<int>(t);
}

}  // namespace

Napi::Function ObjectHandle::Init(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceMethod<&ObjectHandle::Maps>("maps"),
                         InstanceMethod<&ObjectHandle::Programs>("programs"),
                         InstanceMethod<&ObjectHandle::Rodata>("rodata"),
                         InstanceMethod<&ObjectHandle::SetRodata>("setRodata"),
                         InstanceMethod<&ObjectHandle::SetMaxEntries>("setMaxEntries"),
                         InstanceMethod<&ObjectHandle::Load>("load"),
                         InstanceMethod<&ObjectHandle::Map>("map"),
                         InstanceMethod<&ObjectHandle::Program>("program"),
                         InstanceMethod<&ObjectHandle::Close>("close"),
                     });
}

// new BpfObject(path, { pinRoot? })
ObjectHandle::ObjectHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<ObjectHandle>(info) {
  Napi::Env env = info.Env();
  path_ = StringArg(info, 0, "path");
  std::string pinRoot;
  if (!IsMissing(info, 1)) {
    if (!info[1].IsObject()) Throw(env, kInvalidArgument, "options must be an object");
    Napi::Value v = info[1].As<Napi::Object>().Get("pinRoot");
    if (!v.IsUndefined()) {
      if (!v.IsString()) Throw(env, kInvalidArgument, "options.pinRoot must be a string");
      pinRoot = v.As<Napi::String>().Utf8Value();
    }
  }
  struct bpf_object_open_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  if (!pinRoot.empty()) opts.pin_root_path = pinRoot.c_str();
  BeginCapture();
  obj_ = bpf_object__open_file(path_.c_str(), &opts);
  if (obj_ == nullptr) {
    ErrorDetails d;
    d.err = errno;
    d.libbpfLog = TakeCapture();
    Throw(env, kOpenFailed, "cannot open BPF object " + path_, d);
  }
  TakeCapture();
}

ObjectHandle::~ObjectHandle() {
  if (obj_ != nullptr) bpf_object__close(obj_);
}

struct bpf_object *ObjectHandle::Obj(Napi::Env env, const char *op) {
  if (obj_ == nullptr) Throw(env, kClosed, std::string("cannot ") + op + ": BPF object " + path_ + " is closed");
  return obj_;
}

struct bpf_map *ObjectHandle::FindMap(Napi::Env env, const std::string &name) {
  struct bpf_map *map = bpf_object__find_map_by_name(Obj(env, "find a map"), name.c_str());
  if (map == nullptr) Throw(env, kNotFound, "BPF object " + path_ + " has no map " + name);
  return map;
}

// The map libbpf made of the object's .rodata section ("<obj>.rodata"), or null.
struct bpf_map *ObjectHandle::RodataMap() {
  struct bpf_map *map;
  bpf_object__for_each_map(map, obj_) {
    if (!bpf_map__is_internal(map)) continue;
    std::string name = bpf_map__name(map);
    if (name.size() >= 7 && name.compare(name.size() - 7, 7, ".rodata") == 0) return map;
  }
  return nullptr;
}

// [{ name, type, keySize, valueSize, maxEntries, internal, pinPath? }]
Napi::Value ObjectHandle::Maps(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_object *obj = Obj(env, "list maps");
  Napi::Array out = Napi::Array::New(env);
  struct bpf_map *map;
  uint32_t i = 0;
  bpf_object__for_each_map(map, obj) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", bpf_map__name(map));
    m.Set("type", MapTypeName(bpf_map__type(map)));
    m.Set("keySize", bpf_map__key_size(map));
    m.Set("valueSize", bpf_map__value_size(map));
    m.Set("maxEntries", bpf_map__max_entries(map));
    m.Set("internal", bpf_map__is_internal(map));
    const char *pin = bpf_map__pin_path(map);
    if (pin != nullptr) m.Set("pinPath", pin);
    out.Set(i++, m);
  }
  return out;
}

// [{ name, section, type, attachType }]
Napi::Value ObjectHandle::Programs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_object *obj = Obj(env, "list programs");
  Napi::Array out = Napi::Array::New(env);
  struct bpf_program *prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("type", ProgTypeName(bpf_program__type(prog)));
    int type = ExpectedAttachType(prog);
    if (type >= 0) p.Set("attachType", AttachTypeName(static_cast<enum bpf_attach_type>(type)));
    out.Set(i++, p);
  }
  return out;
}

// The variables of .rodata from the object's BTF: [{ name, offset, size }].
Napi::Value ObjectHandle::Rodata(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_object *obj = Obj(env, "list rodata");
  Napi::Array out = Napi::Array::New(env);
  struct btf *btf = bpf_object__btf(obj);
  if (btf == nullptr) return out;
  int id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
  if (id < 0) return out;
  const struct btf_type *sec = btf__type_by_id(btf, id);
  const struct btf_var_secinfo *vsi = btf_var_secinfos(sec);
  for (uint32_t i = 0; i < btf_vlen(sec); i++, vsi++) {
    const struct btf_type *var = btf__type_by_id(btf, vsi->type);
    Napi::Object v = Napi::Object::New(env);
    v.Set("name", btf__name_by_offset(btf, var->name_off));
    v.Set("offset", vsi->offset);
    v.Set("size", vsi->size);
    out.Set(i, v);
  }
  return out;
}

// setRodata(name, value: Buffer): sets a `const volatile` variable before load; the size must match.
Napi::Value ObjectHandle::SetRodata(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, "value");
  struct bpf_object *obj = Obj(env, "set rodata");
  if (loaded_) Throw(env, kInvalidState, "cannot set rodata " + name + ": " + path_ + " is already loaded");
  struct btf *btf = bpf_object__btf(obj);
  struct bpf_map *map = RodataMap();
  int id = btf == nullptr ? -1 : btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
  if (map == nullptr || id < 0) Throw(env, kRodataUnknownVar, path_ + " has no rodata (no variable " + name + ")");
  const struct btf_type *sec = btf__type_by_id(btf, id);
  const struct btf_var_secinfo *vsi = btf_var_secinfos(sec);
  for (uint32_t i = 0; i < btf_vlen(sec); i++, vsi++) {
    const struct btf_type *var = btf__type_by_id(btf, vsi->type);
    if (name != btf__name_by_offset(btf, var->name_off)) continue;
    if (value.Length() != vsi->size) {
      Throw(env, kRodataSizeMismatch,
            "rodata variable " + name + " of " + path_ + " has " + std::to_string(vsi->size) + " bytes, value has " +
                std::to_string(value.Length()));
    }
    size_t size = 0;
    const void *current = bpf_map__initial_value(map, &size);
    if (current == nullptr || vsi->offset + vsi->size > size) {
      Throw(env, kInvalidState, "rodata of " + path_ + " is not where its BTF says");
    }
    std::vector<uint8_t> data(static_cast<const uint8_t *>(current), static_cast<const uint8_t *>(current) + size);
    memcpy(data.data() + vsi->offset, value.Data(), vsi->size);
    int err = bpf_map__set_initial_value(map, data.data(), data.size());
    if (err != 0) ThrowErrno(env, kInvalidState, "cannot set rodata " + name + " of " + path_, err);
    return env.Undefined();
  }
  Throw(env, kRodataUnknownVar, path_ + " has no rodata variable " + name);
}

// setMaxEntries(map, n): resizes a map before load.
Napi::Value ObjectHandle::SetMaxEntries(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "map");
  uint32_t n = Uint32Arg(info, 1, "maxEntries");
  struct bpf_map *map = FindMap(env, name);
  if (loaded_) Throw(env, kInvalidState, "cannot resize map " + name + ": " + path_ + " is already loaded");
  int err = bpf_map__set_max_entries(map, n);
  if (err != 0) ThrowErrno(env, kInvalidArgument, "cannot set max_entries of map " + name, err);
  return env.Undefined();
}

// load(): creates (or reuses pinned) maps and loads every program through the verifier.
Napi::Value ObjectHandle::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_object *obj = Obj(env, "load");
  if (loaded_) Throw(env, kInvalidState, path_ + " is already loaded");
  BeginCapture();
  int err = bpf_object__load(obj);
  std::string log = TakeCapture();
  if (err == 0) {
    loaded_ = true;
    return env.Undefined();
  }
  ErrorDetails d;
  d.err = err < 0 ? -err : err;
  d.libbpfLog = log;
  std::string what;
  if (ExtractVerifierLog(log, &d.program, &d.verifierLog)) {
    what = "program " + d.program + " was rejected by the verifier";
  } else if (!(d.program = FailedProgram(log)).empty()) {
    what = "the kernel refused program " + d.program;
  } else {
    std::string first = FirstLine(log);
    what = first.empty() ? "libbpf failed" : first;
  }
  // A failed load leaves the object unusable (libbpf unloads what it loaded): close it now.
  bpf_object__close(obj_);
  obj_ = nullptr;
  Throw(env, kLoadFailed, "cannot load " + path_ + ": " + what, d);
}

Napi::Value ObjectHandle::Map(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  struct bpf_map *map = FindMap(env, name);
  if (!loaded_) Throw(env, kInvalidState, "cannot open map " + name + ": " + path_ + " is not loaded yet");
  return MapHandle::NewFromFd(env, DupFd(env, bpf_map__fd(map), name.c_str()), name);
}

Napi::Value ObjectHandle::Program(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  struct bpf_program *prog = bpf_object__find_program_by_name(Obj(env, "find a program"), name.c_str());
  if (prog == nullptr) Throw(env, kNotFound, "BPF object " + path_ + " has no program " + name);
  if (!loaded_) Throw(env, kInvalidState, "cannot open program " + name + ": " + path_ + " is not loaded yet");
  int fd = DupFd(env, bpf_program__fd(prog), name.c_str());
  return ProgramHandle::NewFromFd(env, fd, name, ExpectedAttachType(prog));
}

// close(): frees the object and its fds; handles opened from it keep their own fds and stay usable.
Napi::Value ObjectHandle::Close(const Napi::CallbackInfo &info) {
  if (obj_ != nullptr) {
    bpf_object__close(obj_);
    obj_ = nullptr;
  }
  return info.Env().Undefined();
}

}  // namespace skein
