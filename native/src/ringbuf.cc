// RingBufferHandle: reads a BPF ring buffer map. consume() takes what is there without waiting; poll()
// waits on a worker thread (never blocking the event loop) and resolves with what arrived.

#include <unistd.h>

#include <cerrno>
#include <vector>

#include "addon.h"

namespace skein {

namespace {

Napi::Array ToArray(Napi::Env env, std::vector<std::vector<uint8_t>> &records) {
  Napi::Array out = Napi::Array::New(env, records.size());
  for (size_t i = 0; i < records.size(); i++) {
    out.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, records[i].data(), records[i].size()));
  }
  records.clear();
  return out;
}

// Runs ring_buffer__poll on the libuv thread pool; the handle is busy until it ends.
class PollWorker : public Napi::AsyncWorker {
 public:
  PollWorker(Napi::Env env, RingBufferHandle *rb, Napi::Object self, int timeoutMs)
      : Napi::AsyncWorker(env, "skein:bpf:ringbuf-poll"),
        rb_(rb),
        self_(Napi::Persistent(self)),
        timeoutMs_(timeoutMs),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int n = ring_buffer__poll(rb_->rb_, timeoutMs_);
    if (n < 0 && n != -EINTR) err_ = -n;
  }

  void OnOK() override {
    Napi::Env env = Env();
    rb_->busy_ = false;
    if (rb_->closing_) rb_->Free();
    if (err_ != 0) {
      rb_->pending_.clear();
      try {
        ThrowErrno(env, kRingBufferFailed, "ring buffer poll failed", err_);
      } catch (const Napi::Error &e) {
        deferred_.Reject(e.Value());
      }
      return;
    }
    deferred_.Resolve(ToArray(env, rb_->pending_));
  }

 private:
  RingBufferHandle *rb_;
  Napi::ObjectReference self_;  // keeps the handle alive while the worker runs
  int timeoutMs_;
  int err_ = 0;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

Napi::Function RingBufferHandle::Init(Napi::Env env) {
  return DefineClass(env, "BpfRingBuffer",
                     {
                         InstanceMethod<&RingBufferHandle::Consume>("consume"),
                         InstanceMethod<&RingBufferHandle::Poll>("poll"),
                         InstanceMethod<&RingBufferHandle::Close>("close"),
                     });
}

int RingBufferHandle::OnSample(void *ctx, void *data, size_t size) {
  auto *self = static_cast<RingBufferHandle *>(ctx);
  const auto *bytes = static_cast<const uint8_t *>(data);
  self->pending_.emplace_back(bytes, bytes + size);
  return 0;
}

// new BpfRingBuffer(map): map is a BpfMap handle of type ringbuf.
RingBufferHandle::RingBufferHandle(const Napi::CallbackInfo &info) : Napi::ObjectWrap<RingBufferHandle>(info) {
  Napi::Env env = info.Env();
  if (IsMissing(info, 0) || !info[0].IsObject()) Throw(env, kInvalidArgument, "BpfRingBuffer takes a map handle");
  MapHandle *map = Napi::ObjectWrap<MapHandle>::Unwrap(info[0].As<Napi::Object>());
  fd_ = DupFd(env, map->Fd(env, "read the ring buffer of"), "the ring buffer");
  BeginCapture();
  rb_ = ring_buffer__new(fd_, &RingBufferHandle::OnSample, this, nullptr);
  if (rb_ == nullptr) {
    ErrorDetails d;
    d.err = errno;
    d.libbpfLog = TakeCapture();
    close(fd_);
    fd_ = -1;
    Throw(env, kRingBufferFailed, "cannot open the ring buffer (is the map a ringbuf?)", d);
  }
  TakeCapture();
}

RingBufferHandle::~RingBufferHandle() { Free(); }

void RingBufferHandle::Free() {
  if (rb_ != nullptr) {
    ring_buffer__free(rb_);
    rb_ = nullptr;
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

// consume() -> Buffer[]: every record available now, without waiting.
Napi::Value RingBufferHandle::Consume(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (rb_ == nullptr || closing_) Throw(env, kClosed, "cannot consume: the ring buffer is closed");
  if (busy_) Throw(env, kInvalidState, "cannot consume while a poll() is waiting");
  int n = ring_buffer__consume(rb_);
  if (n < 0) {
    pending_.clear();
    ThrowErrno(env, kRingBufferFailed, "ring buffer consume failed", n);
  }
  return ToArray(env, pending_);
}

// poll(timeoutMs) -> Promise<Buffer[]>: waits up to timeoutMs for records (empty array on timeout).
Napi::Value RingBufferHandle::Poll(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t timeout = Uint32Arg(info, 0, "timeoutMs");
  if (rb_ == nullptr || closing_) Throw(env, kClosed, "cannot poll: the ring buffer is closed");
  if (busy_) Throw(env, kInvalidState, "a poll() is already waiting on this ring buffer");
  if (timeout > 60000) Throw(env, kInvalidArgument, "timeoutMs must be at most 60000");
  busy_ = true;
  auto *worker = new PollWorker(env, this, Value(), static_cast<int>(timeout));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// close(): frees the ring buffer now, or when the running poll() ends.
Napi::Value RingBufferHandle::Close(const Napi::CallbackInfo &info) {
  if (busy_) {
    closing_ = true;
  } else {
    Free();
  }
  return info.Env().Undefined();
}

}  // namespace skein
