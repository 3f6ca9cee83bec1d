//! Kafka's ACL operations as the wire numbers them, and the `*_authorized_operations`
//! bitfields that Metadata, DescribeCluster and DescribeGroups answer when a client
//! asks for them (KIP-430).
//!
//! A bitfield has bit `1 << code` set for each operation the caller may perform on the
//! resource, out of the operations Kafka defines for its type. Troupe has no
//! authorizer yet, so every caller may perform all of them, which is also what Kafka
//! answers without an authorizer. A request that did not ask gets Kafka's sentinel,
//! [`AUTHORIZED_OPERATIONS_OMITTED`].

/// "Not requested": what the `*_authorized_operations` fields hold unless asked for.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Kafka's `AclOperation` codes (a wire contract: never renumbered). `UNKNOWN` (0),
/// `ANY` (1) and `ALL` (2) are filter values, never part of a bitfield; the token
/// operations (13, 14) belong to the USER resource, which Troupe does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum AclOperation {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// The resource types whose operations a client can ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

impl ResourceType {
    /// The operations Kafka defines for this resource type.
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
        }
    }
}

/// The bitfield of `ops`.
pub fn bitfield(ops: &[AclOperation]) -> i32 {
    ops.iter().fold(0, |bits, op| bits | 1 << (*op as i8))
}

/// What a response says about the caller's operations on a resource of type `rt`:
/// all of them when `requested` (no ACLs exist yet), else the sentinel.
pub fn authorized_operations(rt: ResourceType, requested: bool) -> i32 {
    if requested {
        bitfield(rt.operations())
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitfields a Kafka broker without an authorizer answers, bit by bit.
    #[test]
    fn every_operation_of_each_resource_type() {
        let bits = |codes: &[u32]| codes.iter().map(|c| 1i32 << c).sum::<i32>();
        let cases = [
            (ResourceType::Topic, bits(&[3, 4, 5, 6, 7, 8, 10, 11]), 3576),
            (ResourceType::Group, bits(&[3, 6, 8]), 328),
            (ResourceType::Cluster, bits(&[5, 7, 8, 9, 10, 11, 12]), 8096),
        ];
        for (rt, want, number) in cases {
            assert_eq!(want, number, "{rt:?}");
            assert_eq!(authorized_operations(rt, true), want, "{rt:?}");
            assert_eq!(authorized_operations(rt, false), i32::MIN, "{rt:?}");
        }
    }
}
