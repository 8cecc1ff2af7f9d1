use super::*;

#[test]
fn a_plan_keeps_every_precondition_and_each_key_s_last_write() {
    let mut b = WriteBatch::new();
    b.expect_absent("a", b"x".to_vec())
        .put("a", b"x".to_vec(), b"1".to_vec())
        .put("a", b"y".to_vec(), b"2".to_vec())
        .delete("a", b"x".to_vec())
        .expect("b", b"z".to_vec(), Some(b"3".to_vec()))
        .put("a", b"y".to_vec(), b"4".to_vec())
        .delete("b", b"w".to_vec())
        .put("b", b"w".to_vec(), b"5".to_vec());
    let p = Plan::of(&b);
    assert_eq!(
        p.expects,
        vec![("a", &b"x"[..], None), ("b", &b"z"[..], Some(&b"3"[..]))]
    );
    assert_eq!(p.put_ns, ["a", "b"]);
    assert_eq!(p.put_keys, [&b"y"[..], &b"w"[..]]);
    assert_eq!(p.put_values, [&b"4"[..], &b"5"[..]]);
    assert_eq!(p.delete_ns, ["a"]);
    assert_eq!(p.delete_keys, [&b"x"[..]]);
}

proptest::proptest! {
    /// Writing a plan's final values gives the same state as applying
    /// the batch's writes one by one, whatever the order and overlap.
    #[test]
    fn a_plan_writes_what_the_batch_would(
        ops in proptest::collection::vec((0u8..3, 0u8..4, proptest::option::of(0u8..8)), 0..40)
    ) {
        use std::collections::BTreeMap;
        const NS: [&str; 3] = ["a", "b", "c"];
        let mut batch = WriteBatch::new();
        let mut applied: BTreeMap<(&str, Vec<u8>), Vec<u8>> = BTreeMap::new();
        for (ns, key, value) in &ops {
            let (ns, key) = (NS[*ns as usize], vec![*key]);
            match value {
                Some(v) => {
                    batch.put(ns, key.clone(), vec![*v]);
                    applied.insert((ns, key), vec![*v]);
                }
                None => {
                    batch.delete(ns, key.clone());
                    applied.remove(&(ns, key));
                }
            }
        }
        let plan = Plan::of(&batch);
        let mut planned: BTreeMap<(&str, Vec<u8>), Vec<u8>> = BTreeMap::new();
        for ((ns, k), v) in plan.put_ns.iter().zip(&plan.put_keys).zip(&plan.put_values) {
            proptest::prop_assert!(planned.insert((ns, k.to_vec()), v.to_vec()).is_none(), "a key written twice");
        }
        for (ns, k) in plan.delete_ns.iter().zip(&plan.delete_keys) {
            proptest::prop_assert!(!planned.contains_key(&(*ns, k.to_vec())), "a key both written and deleted");
        }
        proptest::prop_assert_eq!(planned, applied);
    }
}

#[test]
fn names_become_safe_table_names() {
    assert!(check_name("intake").is_ok());
    assert!(check_name("audit_2").is_ok());
    for bad in [
        "",
        "Intake",
        "1x",
        "a-b",
        "x; DROP TABLE y",
        &"a".repeat(41),
    ] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
    assert!(PostgresStore::connect(&PostgresConfig::new("host=127.0.0.1", "x;y")).is_err());
    let e = PostgresStore::connect(&PostgresConfig::new("port=notaport", "x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("connection string"), "{e}");
}
