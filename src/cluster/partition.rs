//! The task of a customer: Kafka's default partitioner over `customer_id`,
//! so a producer keying probes and tickets by customer with the Java
//! client's default partitioner (or librdkafka's `murmur2_random`) puts every
//! event of a customer in the partition that task reads.

/// Seed of Kafka's `Utils.murmur2`.
const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// MurmurHash2 (32-bit) as Kafka's `Utils.murmur2` computes it: little-endian
/// words, seed `0x9747b28c`. Returned as the Java `int` bit pattern.
pub fn murmur2(data: &[u8]) -> u32 {
    // The length enters the hash modulo 2^32, as Java's int does.
    let mut h = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The task (0..`tasks`) owning `customer_id`: `toPositive(murmur2(key)) %
/// tasks`, Kafka's default partitioner for a keyed record. `toPositive`
/// clears the sign bit (it is not `abs`), which is what librdkafka's
/// `murmur2` partitioners do too.
///
/// # Panics
/// When `tasks` is 0: the task count is validated configuration, never 0.
pub fn task_of(customer_id: &str, tasks: u32) -> u32 {
    assert!(tasks > 0, "the task count must be at least 1");
    (murmur2(customer_id.as_bytes()) & 0x7fff_ffff) % tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache Kafka's `UtilsTest.testMurmur2` vectors (Java `int`s).
    #[test]
    fn murmur2_matches_kafkas_utils_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "murmur2({})",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// librdkafka's `unittest_murmur2` vectors (`rdmurmur2.c`), which include
    /// every tail length and the empty key.
    #[test]
    fn murmur2_matches_librdkafkas_vectors() {
        let unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs";
        let cases: [(&str, u32); 11] = [
            ("kafka", 0xd067_cf64),
            ("giberish123456789", 0x8f55_2b0c),
            ("1234", 0x9fc9_7b14),
            ("234", 0xe7c0_09ca),
            ("34", 0x8739_30da),
            ("4", 0x5a4b_5ca1),
            (unaligned, 0x7842_4f1c),
            (&unaligned[1..], 0x4a62_b377),
            (&unaligned[2..], 0xe0e4_e09e),
            (&unaligned[3..], 0x62b8_b43f),
            ("", 0x106e_08d9),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key.as_bytes()), expected, "murmur2({key:?})");
        }
    }

    #[test]
    fn task_of_clears_the_sign_bit_rather_than_taking_abs() {
        // "21" hashes to a negative int: -973932308 & 0x7fffffff = 1173551340,
        // whereas abs would give 973932308.
        assert_eq!(task_of("21", 1_000_000_007), 1_173_551_340 % 1_000_000_007);
        assert_eq!(task_of("21", 12), 1_173_551_340 % 12);
        // Kafka's DefaultPartitionerTest-style check: "foobar" over 50.
        assert_eq!(task_of("foobar", 50), 16);
    }

    #[test]
    fn every_task_is_in_range_and_one_task_takes_everything() {
        for i in 0..1000 {
            let c = format!("customer-{i}");
            assert!(task_of(&c, 6) < 6);
            assert_eq!(task_of(&c, 1), 0);
        }
    }
}
