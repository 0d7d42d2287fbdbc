#include "device_link/gateway_service.h"

#include <algorithm>
#include <list>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "device_link/input_limits.h"
#include "google/protobuf/arena.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"

namespace pumptwin::device_link {

using v1::GatewayMessage;
using v1::ServerMessage;

namespace {

using common::ToGrpc;

constexpr size_t kMaxGatewayIdBytes = kMaxIdBytes;

}  // namespace

std::string PeerGatewayIdentity(const grpc::CallbackServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  for (const grpc::string_ref& cn : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
    return std::string(cn.data(), cn.size());
  }
  return "";
}

// One Connect stream. Life: created by Connect, deleted when both gRPC is done with it
// (OnDone) and every Submit callback has run (refs_ reaches 0), so a sink completing after
// cancellation never touches freed memory. gRPC operations (Start*, Finish) are issued
// outside mu_ by Drive(), which decides them under mu_; Finish waits until no Start* call
// is between decision and issue (starting_ops_), so no op is started after Finish.
static google::protobuf::ArenaOptions ReadArenaOptions() {
  google::protobuf::ArenaOptions o;
  o.start_block_size = 256;      // an idle stream's pending read holds one small block
  o.max_block_size = 64 * 1024;  // a 100-sample frame fits in a few blocks
  return o;
}

class GatewayStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  GatewayStream(GatewayService* service, grpc::CallbackServerContext* context)
      : service_(service), opts_(service->options()), context_(context) {
    service_->active_streams_.fetch_add(1);
    if (opts_.metrics.stream_opened) opts_.metrics.stream_opened();
    {
      absl::MutexLock l(&mu_);
      want_first_read_ = true;
    }
    Drive();
  }

  void OnReadDone(bool ok) override {
    // reading_ stays true while read_msg_ is being consumed, so a concurrent Drive (from a
    // sink completion) cannot start the next read into it.
    if (ok) {
      ++messages_read_;
      if (grpc::SerializationTraits<GatewayMessage>::Deserialize(&read_buf_, read_msg_).ok()) {
        HandleMessage();
      } else {
        HandleUnparseable();
      }
      read_buf_.Clear();
      // The decoded batch owns copies of everything it needs: drop the parsed message and
      // its ~2 allocations per sample in one go, and parse the next into a fresh arena.
      read_arena_.Reset();
      read_msg_ = google::protobuf::Arena::CreateMessage<GatewayMessage>(&read_arena_);
    }
    {
      absl::MutexLock l(&mu_);
      reading_ = false;
      if (!ok) read_closed_ = true;  // half-close by the gateway, or the stream broke
    }
    Drive();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock l(&mu_);
      writing_ = false;
      if (!ok) {
        write_queue_.clear();
        SetFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to gateway failed"));
      }
    }
    Drive();
  }

  void OnCancel() override {
    {
      absl::MutexLock l(&mu_);
      cancelled_ = true;
      write_queue_.clear();
      SetFinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    }
    Drive();
  }

  void OnDone() override {
    if (opts_.metrics.stream_closed) opts_.metrics.stream_closed(final_code_);
    service_->active_streams_.fetch_sub(1);
    Unref();
  }

 private:
  struct Actions {
    bool write = false;
    bool read = false;
    std::optional<grpc::Status> finish;
  };

  // Records the status to finish with (first one wins); Drive issues Finish when allowed.
  void SetFinishLocked(grpc::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!finish_status_) finish_status_ = std::move(s);
  }

  void QueueLocked(ServerMessage m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_ || cancelled_) return;
    write_queue_.push_back(std::move(m));
  }

  // Queues an Ack (merged with the acks waiting behind the current write when the gateway
  // accepts AckBatch: one write and one read instead of one each).
  void QueueAckLocked(v1::Ack ack) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_ || cancelled_) return;
    AppendAck(write_queue_, std::move(ack), ack_batches_);
  }

  bool WantReadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (want_first_read_) return true;
    if (!hello_done_) return false;  // the Hello is still being processed
    return in_flight_ < opts_.max_unacked_frames && write_queue_.size() < opts_.max_queued_messages;
  }

  // Decides and issues the next gRPC operations. Called after every state change.
  void Drive() {
    Actions a;
    {
      absl::MutexLock l(&mu_);
      if (finish_called_) return;
      if (!writing_ && !write_queue_.empty() && !cancelled_) {
        write_msg_ = std::move(write_queue_.front());
        write_queue_.pop_front();
        writing_ = true;
        a.write = true;
      }
      const bool read_needed = !reading_ && !read_closed_ && !finish_status_ && WantReadLocked();
      if (read_needed) {
        reading_ = true;
        want_first_read_ = false;
        a.read = true;
      } else if (!reading_ && !read_closed_ && !finish_status_ && hello_done_ && !paused_) {
        paused_ = true;  // back-pressure: reading stops until the sink catches up
        if (opts_.metrics.read_paused) opts_.metrics.read_paused();
      }
      if (a.read) paused_ = false;
      if (read_closed_ && in_flight_ == 0 && !finish_status_) {
        SetFinishLocked(grpc::Status::OK);  // gateway half-closed and everything answered
      }
      const bool drained = cancelled_ || (!writing_ && write_queue_.empty());
      if (finish_status_ && drained && starting_ops_ == 0 && !a.write && !a.read) {
        finish_called_ = true;
        final_code_ = static_cast<absl::StatusCode>(finish_status_->error_code());
        a.finish = *finish_status_;
      }
      if (a.write) ++starting_ops_;
      if (a.read) ++starting_ops_;
    }
    if (a.write) {
      bool own_buffer = false;
      write_buf_.Clear();
      if (!grpc::SerializationTraits<ServerMessage>::Serialize(write_msg_, &write_buf_, &own_buffer)
               .ok()) {
        // Cannot happen for a message built here; never leave the write unissued.
        write_buf_.Clear();
      }
      StartWrite(&write_buf_);
    }
    if (a.read) StartRead(&read_buf_);
    if (a.finish) {
      Finish(*a.finish);
      return;
    }
    if (a.write || a.read) {
      bool again;
      {
        absl::MutexLock l(&mu_);
        starting_ops_ -= (a.write ? 1 : 0) + (a.read ? 1 : 0);
        again = starting_ops_ == 0 && finish_status_.has_value();
      }
      if (again) Drive();
    }
  }

  void HandleMessage() {
    bool hello_done;
    {
      absl::MutexLock l(&mu_);
      hello_done = hello_done_;
    }
    if (!hello_done) {
      HandleHello();
    } else if (read_msg_->has_frame()) {
      HandleFrame();
    } else {
      absl::MutexLock l(&mu_);
      SetFinishLocked(grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          read_msg_->has_hello() ? "Hello sent twice on one stream" : "empty GatewayMessage"));
    }
  }

  // The bytes of a message did not parse as a GatewayMessage (not protobuf, or a string
  // field that is not UTF-8). Nothing of it can be acked or nacked (its frame_id is
  // unknown): the stream ends with a status that says which message, and the gateway
  // resends what is unacknowledged.
  void HandleUnparseable() {
    absl::MutexLock l(&mu_);
    if (!hello_done_) {
      SetFinishLocked(grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          "the first message of a DeviceGateway.Connect stream must be a Hello; it is not a "
          "valid GatewayMessage (protobuf parse failed; string fields must be UTF-8)"));
      return;
    }
    SetFinishLocked(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("message ", messages_read_,
                     " of the stream is not a valid GatewayMessage (protobuf parse failed; "
                     "string fields must be UTF-8); frames after it were not read")));
  }

  void HandleHello() {
    auto fail = [this](grpc::StatusCode code, std::string msg) {
      absl::MutexLock l(&mu_);
      SetFinishLocked(grpc::Status(code, std::move(msg)));
    };
    if (!read_msg_->has_hello()) {
      return fail(grpc::StatusCode::FAILED_PRECONDITION,
                  "the first message of a DeviceGateway.Connect stream must be a Hello");
    }
    const v1::Hello& hello = read_msg_->hello();
    if (hello.gateway_id().empty() || hello.gateway_id().size() > kMaxGatewayIdBytes) {
      return fail(grpc::StatusCode::INVALID_ARGUMENT,
                  absl::StrCat("hello.gateway_id must be 1..", kMaxGatewayIdBytes, " bytes"));
    }
    const std::string peer = PeerGatewayIdentity(*context_);
    if (peer.empty() && opts_.require_peer_identity) {
      return fail(grpc::StatusCode::UNAUTHENTICATED,
                  "a client certificate naming the gateway is required");
    }
    if (!peer.empty() && peer != hello.gateway_id()) {
      return fail(grpc::StatusCode::PERMISSION_DENIED,
                  absl::StrCat("hello.gateway_id=", hello.gateway_id(),
                               " does not match the client certificate's common name ", peer));
    }
    if (hello.pump_ids_size() > kMaxHelloPumpIds) {
      return fail(grpc::StatusCode::INVALID_ARGUMENT,
                  absl::StrCat("hello.pump_ids has ", hello.pump_ids_size(), " entries; at most ",
                               kMaxHelloPumpIds, " (or none: every pump bound to the gateway)"));
    }
    for (const std::string& id : hello.pump_ids()) {
      if (absl::Status s = ValidateId(id, "hello.pump_ids[]"); !s.ok()) {
        return fail(grpc::StatusCode::INVALID_ARGUMENT, std::string(s.message()));
      }
    }
    std::vector<std::string> pumps(hello.pump_ids().begin(), hello.pump_ids().end());
    absl::StatusOr<std::vector<ResumePoint>> points =
        service_->sink()->ResumePoints(hello.gateway_id(), pumps);
    if (!points.ok()) {
      return fail(static_cast<grpc::StatusCode>(points.status().code()),
                  std::string(points.status().message()));
    }
    ServerMessage m;
    v1::Welcome* w = m.mutable_welcome();
    w->set_server_version(opts_.server_version);
    w->set_max_samples_per_frame(opts_.frame_limits.max_samples_per_frame);
    w->set_max_unacked_frames(opts_.max_unacked_frames);
    w->set_virtual_shards(opts_.virtual_shards);
    for (const ResumePoint& p : *points) {
      if (p.moved) {
        v1::PumpRoute* r = w->add_moved();
        r->set_pump_id(p.pump_id);
        r->set_replica(p.owner_replica);
        r->set_address(p.owner_address);
        continue;
      }
      v1::PumpResumePoint* rp = w->add_resume_points();
      rp->set_pump_id(p.pump_id);
      rp->set_highest_durable_seq(p.highest_durable_seq);
    }
    absl::MutexLock l(&mu_);
    gateway_id_ = hello.gateway_id();
    ack_batches_ = hello.accepts_ack_batches();
    hello_done_ = true;
    QueueLocked(std::move(m));
  }

  void HandleFrame() {
    const absl::Time received = service_->Now();
    const v1::TelemetryFrame& frame = read_msg_->frame();
    if (opts_.metrics.frame_received) opts_.metrics.frame_received(frame.samples_size());
    std::string gateway_id;
    {
      absl::MutexLock l(&mu_);
      const absl::Duration wait = service_->TakeRateTokens(gateway_id_, frame.samples_size());
      if (wait > absl::ZeroDuration()) {
        const int64_t wait_ms = absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1)));
        ServerMessage m;
        m.mutable_flow_control()->set_max_unacked_frames(opts_.max_unacked_frames);
        m.mutable_flow_control()->set_retry_after_ms(wait_ms);
        QueueLocked(std::move(m));
        SetFinishLocked(grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("gateway ", gateway_id_, " exceeds its rate limit of ",
                         opts_.max_samples_per_second,
                         " samples/s (max_samples_per_second); retry after ", wait_ms, " ms")));
        if (opts_.metrics.rate_limited) opts_.metrics.rate_limited();
        return;
      }
      gateway_id = gateway_id_;
    }
    IngestSink* sink = service_->sink();
    DecodedFrame decoded;
    absl::Status st = DecodeFrame(
        frame, gateway_id, received, opts_.frame_limits,
        [&](absl::string_view pump) { return sink->Authorize(gateway_id, pump); }, &decoded);
    if (!st.ok()) {
      absl::MutexLock l(&mu_);
      SetFinishLocked(ToGrpc(st));
      return;
    }
    {
      absl::MutexLock l(&mu_);
      ++in_flight_;
      ++refs_;
    }
    const uint64_t frame_id = frame.frame_id();
    const uint64_t accepted = decoded.accepted_samples;
    sink->Submit(std::move(decoded.batch),
                 [this, frame_id, accepted, received,
                  nacks = std::move(decoded.nacks)](IngestResult r) mutable {
                   OnSinkDone(frame_id, accepted, received, std::move(nacks), std::move(r));
                 });
  }

  void OnSinkDone(uint64_t frame_id, uint64_t accepted, absl::Time received,
                  std::vector<v1::Nack> nacks, IngestResult r) {
    bool live;
    {
      absl::MutexLock l(&mu_);
      --in_flight_;
      live = !finish_called_ && !cancelled_;
      if (live && !r.status.ok()) {
        SetFinishLocked(ToGrpc(r.status));  // nothing of the frame is durable
      } else if (live) {
        for (v1::Nack& n : nacks) {
          if (opts_.metrics.nack) opts_.metrics.nack(n.reason());
          ServerMessage m;
          *m.mutable_nack() = std::move(n);
          QueueLocked(std::move(m));
        }
        for (SinkNack& n : r.nacks) {
          if (opts_.metrics.nack) opts_.metrics.nack(n.reason);
          ServerMessage m;
          *m.mutable_nack() = MakeNack(frame_id, n.pump_id, n.seq, n.reason, n.message);
          QueueLocked(std::move(m));
        }
        v1::Ack ack;
        ack.set_frame_id(frame_id);
        for (ResumePoint& p : r.durable) {
          v1::PumpResumePoint* rp = ack.add_pumps();
          rp->set_pump_id(std::move(p.pump_id));
          rp->set_highest_durable_seq(p.highest_durable_seq);
        }
        QueueAckLocked(std::move(ack));
        // Under mu_: while Finish has not been called the service is alive.
        if (opts_.metrics.samples_accepted) opts_.metrics.samples_accepted(accepted);
        if (opts_.metrics.frame_ack_latency) {
          opts_.metrics.frame_ack_latency(service_->Now() - received);
        }
      }
    }
    if (live) Drive();
    Unref();
  }

  void Unref() {
    bool last;
    {
      absl::MutexLock l(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  GatewayService* const service_;
  const GatewayServiceOptions& opts_;
  grpc::CallbackServerContext* const context_;
  // The message of the outstanding read (reading_), parsed into a per-stream arena that is
  // reset after each message: a 100-sample frame costs a few block allocations instead of
  // a TelemetrySample and a pump-id string per sample, allocated and freed.
  google::protobuf::Arena read_arena_{ReadArenaOptions()};
  GatewayMessage* read_msg_ = google::protobuf::Arena::CreateMessage<GatewayMessage>(&read_arena_);
  grpc::ByteBuffer read_buf_;   // the outstanding read's bytes (reading_)
  uint64_t messages_read_ = 0;  // messages received so far (read side only)
  ServerMessage write_msg_;     // owned by the outstanding write (writing_)
  grpc::ByteBuffer write_buf_;  // write_msg_ serialized, owned by the outstanding write
  absl::StatusCode final_code_ = absl::StatusCode::kUnknown;  // set before Finish

  absl::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 1;  // gRPC's (dropped in OnDone) + one per Submit
  bool want_first_read_ ABSL_GUARDED_BY(mu_) = false;
  bool hello_done_ ABSL_GUARDED_BY(mu_) = false;
  bool ack_batches_ ABSL_GUARDED_BY(mu_) = false;  // Hello.accepts_ack_batches
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  int starting_ops_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  // A list, not a deque: an idle stream's empty queue allocates nothing (libstdc++'s deque
  // allocates ~600 bytes even when empty; 60 MB at 100 k streams, docs/benchmarks.md).
  std::list<ServerMessage> write_queue_ ABSL_GUARDED_BY(mu_);
  std::string gateway_id_ ABSL_GUARDED_BY(mu_);
};

void AppendAck(std::list<ServerMessage>& queue, v1::Ack ack, bool batches) {
  if (batches && !queue.empty()) {
    ServerMessage& last = queue.back();
    if (last.has_ack()) {
      v1::Ack first = std::move(*last.mutable_ack());
      *last.mutable_acks()->add_acks() = std::move(first);
    }
    if (last.has_acks()) {
      *last.mutable_acks()->add_acks() = std::move(ack);
      return;
    }
  }
  ServerMessage m;
  *m.mutable_ack() = std::move(ack);
  queue.push_back(std::move(m));
}

GatewayService::GatewayService(IngestSink* sink, GatewayServiceOptions options)
    : sink_(sink), options_([&] {
        if (!options.clock) options.clock = [] { return absl::Now(); };
        if (options.max_unacked_frames == 0) options.max_unacked_frames = 1;
        if (options.max_queued_messages == 0) options.max_queued_messages = 1;
        return std::move(options);
      }()) {}

GatewayService::~GatewayService() = default;

absl::Duration GatewayService::TakeRateTokens(const std::string& gateway_id, size_t samples) {
  const double rate = options_.max_samples_per_second;
  if (rate <= 0) return absl::ZeroDuration();
  const double size = options_.rate_burst_samples > 0 ? options_.rate_burst_samples : rate;
  const absl::Time now = Now();
  absl::MutexLock l(&rate_mu_);
  auto [it, inserted] = buckets_.try_emplace(gateway_id);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = size;
  } else {
    const double elapsed_s = std::max(0.0, absl::ToDoubleSeconds(now - b.last_refill));
    b.tokens = std::min(size, b.tokens + elapsed_s * rate);
  }
  b.last_refill = now;
  // A frame larger than the bucket passes once the bucket is full (never starves).
  const double need = std::min(size, static_cast<double>(samples));
  if (need <= b.tokens) {
    b.tokens -= need;
    return absl::ZeroDuration();
  }
  return absl::Seconds((need - b.tokens) / rate) + absl::Milliseconds(1);
}

size_t MaxGatewayMessageBytes(const FrameLimits& limits) {
  // Wire size of one sample with every field present at its largest encoding: tag + length
  // + id; seq, device time and drive units as 10-byte varints; nine doubles; alarm flags;
  // each event as tag + length + type, time and value.
  constexpr size_t kVarint = 10, kDouble = 8, kTag = 1, kLength = 2;
  const size_t event = kTag + kLength + (kTag + 5) + (kTag + kVarint) + (kTag + kDouble);
  const size_t sample = kTag + kLength + limits.sample.max_pump_id_bytes + 3 * (kTag + kVarint) +
                        9 * (kTag + kDouble) + (kTag + 5) +
                        limits.sample.max_events_per_sample * event;
  const size_t frame =
      kTag + 4 + (kTag + kVarint) + size_t{limits.max_samples_per_frame} * (kTag + 3 + sample);
  return frame + (size_t{64} << 10);  // slack for fields added later
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* GatewayService::Connect(
    grpc::CallbackServerContext* context) {
  return new GatewayStream(this, context);
}

}  // namespace pumptwin::device_link
