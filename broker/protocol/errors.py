"""Kafka error codes, one exception class per code.

Raise `errors.UnknownTopicOrPartition("no topic 'x'")` anywhere below a handler;
the handler turns it into `error_code` (and `error_message` where the response
version has one). `retriable` follows Kafka's classification, so clients and our
own CLI can tell a transient failure from a fatal one.
"""

from __future__ import annotations


class KafkaError(Exception):
    """Base of every error that travels to a client as an error code."""

    code = -1
    name = "UNKNOWN_SERVER_ERROR"
    retriable = False

    def __init__(self, message: str | None = None):
        super().__init__(message or self.name)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


BY_CODE: dict[int, type[KafkaError]] = {}


def _define(code: int, name: str, retriable: bool = False) -> type[KafkaError]:
    class_name = "".join(part.capitalize() for part in name.split("_"))
    cls = type(class_name, (KafkaError,), {"code": code, "name": name, "retriable": retriable})
    cls.__module__ = __name__
    BY_CODE[code] = cls
    return cls


UnknownServerError = _define(-1, "UNKNOWN_SERVER_ERROR")
OffsetOutOfRange = _define(1, "OFFSET_OUT_OF_RANGE")
CorruptMessage = _define(2, "CORRUPT_MESSAGE", True)
UnknownTopicOrPartition = _define(3, "UNKNOWN_TOPIC_OR_PARTITION", True)
InvalidFetchSize = _define(4, "INVALID_FETCH_SIZE")
LeaderNotAvailable = _define(5, "LEADER_NOT_AVAILABLE", True)
NotLeaderOrFollower = _define(6, "NOT_LEADER_OR_FOLLOWER", True)
RequestTimedOut = _define(7, "REQUEST_TIMED_OUT", True)
MessageTooLarge = _define(10, "MESSAGE_TOO_LARGE")
NetworkException = _define(13, "NETWORK_EXCEPTION", True)
CoordinatorLoadInProgress = _define(14, "COORDINATOR_LOAD_IN_PROGRESS", True)
CoordinatorNotAvailable = _define(15, "COORDINATOR_NOT_AVAILABLE", True)
NotCoordinator = _define(16, "NOT_COORDINATOR", True)
InvalidTopicException = _define(17, "INVALID_TOPIC_EXCEPTION")
RecordListTooLarge = _define(18, "RECORD_LIST_TOO_LARGE")
NotEnoughReplicas = _define(19, "NOT_ENOUGH_REPLICAS", True)
InvalidRequiredAcks = _define(21, "INVALID_REQUIRED_ACKS")
IllegalGeneration = _define(22, "ILLEGAL_GENERATION")
InconsistentGroupProtocol = _define(23, "INCONSISTENT_GROUP_PROTOCOL")
InvalidGroupId = _define(24, "INVALID_GROUP_ID")
UnknownMemberId = _define(25, "UNKNOWN_MEMBER_ID")
InvalidSessionTimeout = _define(26, "INVALID_SESSION_TIMEOUT")
RebalanceInProgress = _define(27, "REBALANCE_IN_PROGRESS")
InvalidCommitOffsetSize = _define(28, "INVALID_COMMIT_OFFSET_SIZE")
TopicAuthorizationFailed = _define(29, "TOPIC_AUTHORIZATION_FAILED")
GroupAuthorizationFailed = _define(30, "GROUP_AUTHORIZATION_FAILED")
ClusterAuthorizationFailed = _define(31, "CLUSTER_AUTHORIZATION_FAILED")
InvalidTimestamp = _define(32, "INVALID_TIMESTAMP")
UnsupportedSaslMechanism = _define(33, "UNSUPPORTED_SASL_MECHANISM")
IllegalSaslState = _define(34, "ILLEGAL_SASL_STATE")
UnsupportedVersion = _define(35, "UNSUPPORTED_VERSION")
TopicAlreadyExists = _define(36, "TOPIC_ALREADY_EXISTS")
InvalidPartitions = _define(37, "INVALID_PARTITIONS")
InvalidReplicationFactor = _define(38, "INVALID_REPLICATION_FACTOR")
InvalidReplicaAssignment = _define(39, "INVALID_REPLICA_ASSIGNMENT")
InvalidConfig = _define(40, "INVALID_CONFIG")
NotController = _define(41, "NOT_CONTROLLER", True)
InvalidRequest = _define(42, "INVALID_REQUEST")
UnsupportedForMessageFormat = _define(43, "UNSUPPORTED_FOR_MESSAGE_FORMAT")
PolicyViolation = _define(44, "POLICY_VIOLATION")
OutOfOrderSequenceNumber = _define(45, "OUT_OF_ORDER_SEQUENCE_NUMBER")
DuplicateSequenceNumber = _define(46, "DUPLICATE_SEQUENCE_NUMBER")
InvalidProducerEpoch = _define(47, "INVALID_PRODUCER_EPOCH")
InvalidTxnState = _define(48, "INVALID_TXN_STATE")
InvalidProducerIdMapping = _define(49, "INVALID_PRODUCER_ID_MAPPING")
InvalidTransactionTimeout = _define(50, "INVALID_TRANSACTION_TIMEOUT")
ConcurrentTransactions = _define(51, "CONCURRENT_TRANSACTIONS", True)
TransactionalIdAuthorizationFailed = _define(53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
SecurityDisabled = _define(54, "SECURITY_DISABLED")
OperationNotAttempted = _define(55, "OPERATION_NOT_ATTEMPTED")
KafkaStorageError = _define(56, "KAFKA_STORAGE_ERROR", True)
LogDirNotFound = _define(57, "LOG_DIR_NOT_FOUND")
UnknownProducerId = _define(59, "UNKNOWN_PRODUCER_ID")
ReassignmentInProgress = _define(60, "REASSIGNMENT_IN_PROGRESS")
SaslAuthenticationFailed = _define(58, "SASL_AUTHENTICATION_FAILED")
NonEmptyGroup = _define(68, "NON_EMPTY_GROUP")
GroupIdNotFound = _define(69, "GROUP_ID_NOT_FOUND")
FetchSessionIdNotFound = _define(70, "FETCH_SESSION_ID_NOT_FOUND", True)
InvalidFetchSessionEpoch = _define(71, "INVALID_FETCH_SESSION_EPOCH", True)
ListenerNotFound = _define(72, "LISTENER_NOT_FOUND", True)
TopicDeletionDisabled = _define(73, "TOPIC_DELETION_DISABLED")
FencedLeaderEpoch = _define(74, "FENCED_LEADER_EPOCH", True)
UnknownLeaderEpoch = _define(75, "UNKNOWN_LEADER_EPOCH", True)
UnsupportedCompressionType = _define(76, "UNSUPPORTED_COMPRESSION_TYPE")
StaleBrokerEpoch = _define(77, "STALE_BROKER_EPOCH")
OffsetNotAvailable = _define(78, "OFFSET_NOT_AVAILABLE", True)
MemberIdRequired = _define(79, "MEMBER_ID_REQUIRED")
PreferredLeaderNotAvailable = _define(80, "PREFERRED_LEADER_NOT_AVAILABLE", True)
GroupMaxSizeReached = _define(81, "GROUP_MAX_SIZE_REACHED")
FencedInstanceId = _define(82, "FENCED_INSTANCE_ID")
GroupSubscribedToTopic = _define(86, "GROUP_SUBSCRIBED_TO_TOPIC")
InvalidRecord = _define(87, "INVALID_RECORD")
UnstableOffsetCommit = _define(88, "UNSTABLE_OFFSET_COMMIT", True)
ThrottlingQuotaExceeded = _define(89, "THROTTLING_QUOTA_EXCEEDED", True)
ProducerFenced = _define(90, "PRODUCER_FENCED")
UnknownTopicId = _define(100, "UNKNOWN_TOPIC_ID", True)
InconsistentTopicId = _define(103, "INCONSISTENT_TOPIC_ID", True)
OffsetMovedToTieredStorage = _define(109, "OFFSET_MOVED_TO_TIERED_STORAGE")


def from_code(code: int, message: str | None = None) -> KafkaError:
    """An exception instance for `code` (used by clients of the protocol, e.g. the CLI)."""
    cls = BY_CODE.get(code)
    if cls is None:
        err = KafkaError(message or f"error code {code}")
        err.code = code
        return err
    return cls(message)
