//! librdkafka clients other than the journal's producer: their settings,
//! topic creation and checks, listed offsets, and a helper client that
//! answers metadata probes for a running journal.

use super::{backend_error, KafkaOptions};
use crate::error::PersistenceError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Bound on one metadata request.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one watermark request.
pub(crate) const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on topic creation, request and broker operation.
const CREATE_TOPIC_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a freshly created topic may take to show its partitions.
const TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two looks at a topic that is being created.
const TOPIC_VISIBLE_POLL: Duration = Duration::from_millis(100);

/// The settings every client shares, then `role` (the client's own), then
/// the caller's extras. Extras come last so they can set what the journal
/// only defaults (`client.id`, `group.id`); they cannot touch
/// [`super::MANAGED_SETTINGS`] (`KafkaOptions::validate`).
pub(crate) fn config(options: &KafkaOptions, role: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", options.brokers.trim())
        // The journal creates its topic explicitly; metadata requests must
        // not create it with the broker's defaults (4 partitions on Tansu).
        .set("allow.auto.create.topics", "false")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in role {
        config.set(*key, *value);
    }
    for (key, value) in &options.extra {
        config.set(key.trim(), value);
    }
    config
}

/// Settings of a consumer that reads by assignment only.
pub(crate) fn reader_config(options: &KafkaOptions) -> ClientConfig {
    config(
        options,
        &[
            ("client.id", "leadex-journal-reader"),
            // librdkafka's assign() needs a group id; the group is never
            // joined (no subscribe) and no offset is ever committed to it.
            ("group.id", "leadex-journal-reader"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("isolation.level", "read_committed"),
            // A start offset outside the log is an error, never a silent jump.
            ("auto.offset.reset", "error"),
            ("enable.partition.eof", "true"),
            // How long the broker holds a fetch that finds nothing new: the
            // end of a partition is seen this much sooner (the default 500
            // ms made finding three partition ends take 2.5 s). With data
            // available the broker answers at once anyway.
            ("fetch.wait.max.ms", "50"),
        ],
    )
}

/// Forwards librdkafka's logs and global errors to `tracing`; used by every
/// client but the journal's producer (whose context also tracks health).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Readers and helpers retry by themselves; their callers see
        // failures as errors or timeouts.
        tracing::debug!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for TracingContext {}

impl ProducerContext for TracingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// librdkafka's log lines at the matching `tracing` level.
pub(crate) fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// A consumer for reading by assignment.
pub(crate) fn reader(
    options: &KafkaOptions,
) -> Result<BaseConsumer<TracingContext>, PersistenceError> {
    reader_config(options)
        .create_with_context(TracingContext)
        .map_err(|error| backend_error("creating a reader", error))
}

/// A client that answers the reconciler's metadata probes. A producer that never produces: its polling thread serves its
/// event queue, so nothing piles up in it during long outages.
pub(crate) type HelperClient = ThreadedProducer<TracingContext>;

/// Creates the [`HelperClient`].
pub(crate) fn helper(options: &KafkaOptions) -> Result<HelperClient, PersistenceError> {
    config(options, &[("client.id", "leadex-journal-helper")])
        .create_with_context(TracingContext)
        .map_err(|error| backend_error("creating the metadata client", error))
}

/// The helper's client, for metadata.
pub(crate) fn helper_client(helper: &HelperClient) -> &Client<TracingContext> {
    helper.client()
}

/// Creates the topic if it does not exist (`already exists` is fine) and
/// checks that it has `options.partitions` partitions.
pub(crate) fn ensure_topic(options: &KafkaOptions) -> Result<(), PersistenceError> {
    let admin: AdminClient<TracingContext> =
        config(options, &[("client.id", "leadex-journal-admin")])
            .create_with_context(TracingContext)
            .map_err(|error| backend_error("creating the admin client", error))?;
    let client = admin.inner();
    if let Some(partitions) = topic_partitions(client, &options.topic)? {
        return check_partition_count(options, partitions);
    }
    create_topic(&admin, options)?;
    let deadline = Instant::now() + TOPIC_VISIBLE_TIMEOUT;
    // Bounded by TOPIC_VISIBLE_TIMEOUT: metadata may lag the creation.
    loop {
        if let Some(partitions) = topic_partitions(client, &options.topic)? {
            return check_partition_count(options, partitions);
        }
        if Instant::now() >= deadline {
            return Err(backend_error(
                format!("waiting for the new topic {} to appear", options.topic),
                format!(
                    "not in the metadata {} s after creation",
                    TOPIC_VISIBLE_TIMEOUT.as_secs()
                ),
            ));
        }
        std::thread::sleep(TOPIC_VISIBLE_POLL);
    }
}

fn check_partition_count(
    options: &KafkaOptions,
    partitions: usize,
) -> Result<(), PersistenceError> {
    if partitions == options.partitions as usize {
        return Ok(());
    }
    Err(backend_error(
        format!("checking topic {}", options.topic),
        format!(
            "the topic has {partitions} partitions but the journal is configured for {}; \
             changing the partition count would move keys to other partitions and break \
             the order of a ping and its sale",
            options.partitions
        ),
    ))
}

fn create_topic(
    admin: &AdminClient<TracingContext>,
    options: &KafkaOptions,
) -> Result<(), PersistenceError> {
    let action = || format!("creating topic {}", options.topic);
    let topic = NewTopic::new(
        &options.topic,
        options.partitions,
        TopicReplication::Fixed(options.replication_factor),
    )
    .set("retention.ms", "-1")
    .set("cleanup.policy", "delete");
    let admin_options = AdminOptions::new()
        .request_timeout(Some(CREATE_TOPIC_TIMEOUT))
        .operation_timeout(Some(CREATE_TOPIC_TIMEOUT));
    let results = wait_for(
        admin.create_topics([&topic], &admin_options),
        CREATE_TOPIC_TIMEOUT + Duration::from_secs(1),
    )
    .ok_or_else(|| backend_error(action(), "no answer in time"))?
    .map_err(|error| backend_error(action(), error))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(backend_error(action(), code)),
        }
    }
    tracing::info!(
        topic = %options.topic,
        partitions = options.partitions,
        replication_factor = options.replication_factor,
        "kafka journal topic created"
    );
    Ok(())
}

/// The partition count of `topic`, or `None` if the broker does not know
/// it (or knows no partition of it yet).
pub(crate) fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
) -> Result<Option<usize>, PersistenceError> {
    let metadata = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|error| backend_error(format!("fetching metadata of topic {topic}"), error))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None if !found.partitions().is_empty() => Ok(Some(found.partitions().len())),
        None
        | Some(RDKafkaErrorCode::UnknownTopicOrPartition)
        | Some(RDKafkaErrorCode::UnknownTopic)
        | Some(RDKafkaErrorCode::LeaderNotAvailable) => Ok(None),
        Some(code) => Err(backend_error(
            format!("fetching metadata of topic {topic}"),
            code,
        )),
    }
}

/// The broker's answer to "latest offset" of one partition: a lower bound
/// of its end (see `reader::end_offsets`).
pub(crate) fn listed_end<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
) -> Result<i64, PersistenceError> {
    client
        .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
        .map(|(_low, high)| high)
        .map_err(|error| {
            backend_error(
                format!("fetching the high watermark of {topic} partition {partition}"),
                error,
            )
        })
}

/// Drives `future` on this thread for at most `timeout`; `None` if it did
/// not finish. For rdkafka's admin futures, which are completed by the admin
/// client's own polling thread, so no async runtime is needed (and none may
/// be running on the caller's thread).
fn wait_for<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline: each turn parks until woken or the deadline.
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Some(output);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_ready_futures_and_times_out_pending_ones() {
        assert_eq!(wait_for(async { 7 }, Duration::from_millis(10)), Some(7));
        let started = Instant::now();
        assert_eq!(
            wait_for(std::future::pending::<()>(), Duration::from_millis(50)),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
