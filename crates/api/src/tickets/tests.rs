//! Sign/verify, rotation and every refusal the module doc lists; an independent verifier
//! (`jsonwebtoken`) checks what rushline signs, and forges what an attacker would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rushline_domain::{CampaignId, UserId};

use super::*;

/// Tests return their errors instead of unwrapping them.
type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn claims() -> TestResult<TicketClaims> {
    Ok(TicketClaims::waiting(
        UserId::parse("u-123")?,
        CampaignId::parse("concert-2026")?,
        Some(1234),
        Utc::now(),
    ))
}

fn tickets_with(keys: &[&TicketKey]) -> TestResult<Tickets> {
    let keys = TicketKeys::new(keys.iter().map(|k| (*k).clone()).collect())?;
    Ok(Tickets::new(keys, 1000))
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn a_signed_ticket_verifies_to_its_claims() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let claims = claims()?;
    let token = tickets.sign(&claims)?;
    assert_eq!(*tickets.verify(&token)?, claims);
    assert_eq!(tickets.verify_mac(&token)?, claims);
    assert_eq!(tickets.verify_signature(&token)?, claims);
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[0])?)?;
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(
        header["kid"],
        tickets.current_kid().ok_or("no current key")?
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(header["rlm"].as_str().ok_or("no rlm")?)?
            .len(),
        16
    );
    assert!(token.len() < 600, "{}", token.len());
    Ok(())
}

#[test]
fn an_independent_verifier_accepts_it_from_the_jwk_set() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate(), &TicketKey::generate()])?;
    let token = tickets.sign(&claims()?)?;
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(serde_json::to_value(tickets.jwks()?)?)?;
    let kid = jsonwebtoken::decode_header(&token)?.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or("the ticket's kid is not published")?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["rushline"]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &DecodingKey::from_jwk(jwk)?,
        &validation,
    )?;
    assert_eq!(decoded.claims["sub"], "u-123");
    assert_eq!(decoded.claims["pos"], 1234);
    Ok(())
}

#[test]
fn rotation_a_previous_key_verifies_an_unknown_one_does_not() -> TestResult {
    let (old, new, stranger) = (
        TicketKey::generate(),
        TicketKey::generate(),
        TicketKey::generate(),
    );
    let before = tickets_with(&[&old])?;
    let after = tickets_with(&[&new, &old])?;
    let by_old = before.sign(&claims()?)?;
    assert!(after.verify(&by_old).is_ok(), "signed before the switch");
    let by_new = after.sign(&claims()?)?;
    assert_eq!(before.verify(&by_new).err(), Some(TicketError::UnknownKey));
    let by_stranger = tickets_with(&[&stranger])?.sign(&claims()?)?;
    assert_eq!(
        after.verify(&by_stranger).err(),
        Some(TicketError::UnknownKey)
    );
    assert_eq!(
        after
            .jwks()?
            .keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect::<Vec<_>>(),
        [new.kid(), old.kid()]
    );
    Ok(())
}

#[test]
fn a_stranger_signing_under_our_kid_is_refused_by_mac_and_signature() -> TestResult {
    let ours = TicketKey::generate();
    let tickets = tickets_with(&[&ours])?;
    let stranger = tickets_with(&[&TicketKey::generate()])?;
    let forged = segments(&stranger.sign(&claims()?)?);
    let token = format!(
        "{}.{}.{}",
        with_kid(&forged[0], ours.kid())?,
        forged[1],
        forged[2]
    );
    assert_eq!(
        tickets.verify(&token).err(),
        Some(TicketError::BadSignature)
    );
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::BadSignature)
    );
    // Our header and payload under the stranger's signature: rushline's MAC still holds (these
    // are claims rushline issued), anyone checking the signature refuses it.
    let real = segments(&tickets.sign(&claims()?)?);
    let token = format!("{}.{}.{}", real[0], real[1], forged[2]);
    assert!(tickets.verify(&token).is_ok());
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::BadSignature)
    );
    Ok(())
}

/// `header` (an encoded segment) naming `kid` instead.
fn with_kid(header: &str, kid: &str) -> TestResult<String> {
    let mut header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header)?)?;
    header["kid"] = kid.into();
    Ok(b64(serde_json::to_vec(&header)?))
}

#[test]
fn a_ticket_without_rushlines_mac_is_refused_even_when_signed() -> TestResult {
    let key = TicketKey::generate();
    let tickets = tickets_with(&[&key])?;
    let payload = serde_json::to_vec(&claims()?)?;
    let header = format!(r#"{{"alg":"EdDSA","kid":"{}","typ":"JWT"}}"#, key.kid());
    let token = jws::sign_with_header(&key, &header, &payload);
    assert!(tickets.verify_signature(&token).is_ok(), "a good JWS");
    assert_eq!(
        tickets.verify(&token).err(),
        Some(TicketError::Malformed("no rushline MAC in the header"))
    );
    for rlm in ["", "AAAA", "AAAAAAAAAAAAAAAAAAAAAA", "not base64!"] {
        let header = format!(
            r#"{{"alg":"EdDSA","kid":"{}","typ":"JWT","rlm":"{rlm}"}}"#,
            key.kid()
        );
        let token = jws::sign_with_header(&key, &header, &payload);
        assert!(
            matches!(
                tickets.verify(&token),
                Err(TicketError::BadSignature | TicketError::Malformed(_))
            ),
            "{rlm}"
        );
    }
    Ok(())
}
#[test]
fn alg_none_is_refused() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let payload = b64(serde_json::to_vec(&claims()?)?);
    for header in [
        r#"{"alg":"none"}"#.to_owned(),
        format!(
            r#"{{"alg":"none","kid":"{}"}}"#,
            tickets.current_kid().ok_or("no current key")?
        ),
        format!(
            r#"{{"alg":"None","kid":"{}"}}"#,
            tickets.current_kid().ok_or("no current key")?
        ),
    ] {
        for signature in ["", "AA"] {
            let token = format!("{}.{payload}.{signature}", b64(&header));
            assert_eq!(
                tickets.verify(&token).err(),
                Some(TicketError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }
    Ok(())
}

#[test]
fn hs256_with_the_public_key_as_secret_is_refused() -> TestResult {
    // The classic confusion: a verifier that lets the header pick the algorithm checks an HMAC
    // keyed with the public key, which everyone has.
    let key = TicketKey::generate();
    let tickets = tickets_with(&[&key])?;
    let public = URL_SAFE_NO_PAD.decode(&key.jwk().x)?;
    for (secret, alg) in [
        (public.clone(), Algorithm::HS256),
        (key.jwk().x.into_bytes(), Algorithm::HS256),
        (public, Algorithm::HS512),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims()?, &EncodingKey::from_secret(&secret)?)?;
        assert_eq!(
            tickets.verify(&token).err(),
            Some(TicketError::UnsupportedAlgorithm)
        );
    }
    Ok(())
}

#[test]
fn other_asymmetric_algorithms_are_refused() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let real = segments(&tickets.sign(&claims()?)?);
    for alg in ["ES256", "RS256", "PS256", "Ed25519", "EdDSA "] {
        let header = b64(format!(
            r#"{{"alg":"{alg}","kid":"{}"}}"#,
            tickets.current_kid().ok_or("no current key")?
        ));
        let token = format!("{header}.{}.{}", real[1], real[2]);
        assert_eq!(
            tickets.verify(&token).err(),
            Some(TicketError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    Ok(())
}

#[test]
fn a_tampered_payload_or_header_is_refused() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let real = segments(&tickets.sign(&claims()?)?);
    let mut better = claims()?;
    better.pos = Some(1);
    better.adm = Some(0);
    let better = b64(serde_json::to_vec(&better)?);
    let token = format!("{}.{better}.{}", real[0], real[2]);
    assert_eq!(
        tickets.verify(&token).err(),
        Some(TicketError::BadSignature)
    );
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::BadSignature)
    );
    // The same header with members reordered is another signing input (rushline's MAC covers
    // the payload, so only the signature sees it).
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&real[0])?)?;
    let reordered = b64(format!(
        r#"{{"rlm":{},"typ":"JWT","kid":{},"alg":"EdDSA"}}"#,
        header["rlm"], header["kid"]
    ));
    let token = format!("{reordered}.{}.{}", real[1], real[2]);
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::BadSignature)
    );
    // A flipped signature bit.
    let mut signature = URL_SAFE_NO_PAD.decode(&real[2])?;
    signature[5] ^= 1;
    let token = format!("{}.{}.{}", real[0], real[1], b64(signature));
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::BadSignature)
    );
    // A better payload with a MAC and signature made with a key rushline does not have, under
    // our kid.
    let mut forged = claims()?;
    forged.adm = Some(0);
    let t = segments(&tickets_with(&[&TicketKey::generate()])?.sign(&forged)?);
    let token = format!(
        "{}.{}.{}",
        with_kid(&t[0], tickets.current_kid().ok_or("no current key")?)?,
        t[1],
        t[2]
    );
    assert_eq!(
        tickets.verify(&token).err(),
        Some(TicketError::BadSignature)
    );
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::BadSignature)
    );
    Ok(())
}
#[test]
fn critical_extensions_and_missing_kids_are_refused() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let real = segments(&tickets.sign(&claims()?)?);
    let kid = tickets.current_kid().ok_or("no current key")?;
    for (header, expected) in [
        (
            format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp"],"exp":1}}"#),
            TicketError::Malformed("header names critical extensions"),
        ),
        (r#"{"alg":"EdDSA"}"#.to_owned(), TicketError::UnknownKey),
        (
            r#"{"alg":"EdDSA","kid":"someone-else"}"#.to_owned(),
            TicketError::UnknownKey,
        ),
        (
            format!(r#"{{"alg":"EdDSA","alg":"EdDSA","kid":"{kid}"}}"#),
            TicketError::Malformed("header is not a JWS header"),
        ),
    ] {
        let token = format!("{}.{}.{}", b64(&header), real[1], real[2]);
        assert_eq!(tickets.verify(&token).err(), Some(expected), "{header}");
    }
    Ok(())
}

#[test]
fn a_correctly_signed_ticket_of_another_issuer_or_shape_is_refused() -> TestResult {
    let key = TicketKey::generate();
    let tickets = tickets_with(&[&key])?;
    let mut foreign = serde_json::to_value(claims()?)?;
    foreign["iss"] = "someone-else".into();
    let token = jws::sign(&key, &serde_json::to_vec(&foreign)?)?;
    assert_eq!(tickets.verify(&token).err(), Some(TicketError::WrongIssuer));
    assert_eq!(
        tickets.verify_signature(&token).err(),
        Some(TicketError::WrongIssuer)
    );
    for payload in [
        br#"{"iss":"rushline"}"#.as_slice(),
        b"not json",
        br#"{"iss":"rushline","sub":"","cid":"x","jti":"00000000-0000-0000-0000-000000000000","iat":0,"exp":0}"#,
    ] {
        let token = jws::sign(&key, payload)?;
        assert!(
            matches!(tickets.verify(&token), Err(TicketError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
    Ok(())
}

#[test]
fn truncated_huge_and_garbage_tokens_are_refused() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let token = tickets.sign(&claims()?)?;
    for cut in [1, 10, token.len() / 2, token.len() - 1] {
        assert!(tickets.verify(&token[..cut]).is_err(), "cut at {cut}");
    }
    let huge = format!("{token}{}", "A".repeat(MAX_TICKET_BYTES));
    assert_eq!(tickets.verify(&huge).err(), Some(TicketError::TooLarge));
    assert_eq!(
        tickets.verify(&"a.".repeat(2000)).err(),
        Some(TicketError::TooLarge)
    );
    for garbage in [
        "",
        ".",
        "..",
        "...",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJFZERTQSJ9.e30",
        "\u{0}\u{1}.x.y",
        "한국어.토큰.서명",
    ] {
        assert!(
            matches!(
                tickets.verify(garbage),
                Err(TicketError::Malformed(_) | TicketError::UnknownKey)
            ),
            "{garbage:?}"
        );
    }
    // Padding makes another string of the same bytes: refused, not normalised.
    assert!(tickets.verify(&format!("{token}=")).is_err());
    Ok(())
}

#[test]
fn the_cache_is_bounded_and_remembers_only_what_verified() -> TestResult {
    let tickets = Tickets::new(TicketKeys::new(vec![TicketKey::generate()])?, 64);
    let campaign = claims()?.cid;
    let forged = {
        let t = segments(&tickets.sign(&claims()?)?);
        let mut better = claims()?;
        better.adm = Some(0);
        format!("{}.{}.{}", t[0], b64(serde_json::to_vec(&better)?), t[2])
    };
    for _ in 0..3 {
        assert_eq!(
            tickets.verify_for(&forged, &campaign).err(),
            Some(TicketError::BadSignature)
        );
    }
    assert_eq!(tickets.cached(), 0, "a refusal is never remembered");
    let other = CampaignId::parse("concert-2027")?;
    let token = tickets.sign(&claims()?)?;
    assert_eq!(
        tickets.verify_for(&token, &other).err(),
        Some(TicketError::OtherCampaign)
    );
    assert_eq!(
        tickets.cached(),
        0,
        "another campaign's ticket is never remembered"
    );
    let mut issued = Vec::new();
    // 300 over 16 shards of 4: each shard sees about 19, so the first is long evicted.
    for n in 0..300 {
        let mut claims = claims()?;
        claims.pos = Some(n);
        let token = tickets.sign(&claims)?;
        assert!(tickets.verify_for(&token, &campaign).is_ok());
        assert!(tickets.cached() <= 64, "{}", tickets.cached());
        issued.push(token);
    }
    // The newest are remembered, the oldest were evicted, and both still verify.
    // About 19 tickets reach each shard of 4: all or nearly all are full.
    assert!(tickets.cached() > 48, "{}", tickets.cached());
    let cache = &tickets.inner()?.cache;
    let newest = issued.last().ok_or("nothing issued")?;
    let remembered = cache
        .get(&cache::VerifiedCache::hash(&campaign, newest), &campaign)
        .ok_or("the newest is not remembered")?;
    let oldest = cache::VerifiedCache::hash(&campaign, &issued[0]);
    assert!(cache.get(&oldest, &campaign).is_none());
    assert!(tickets.verify_for(&issued[0], &campaign).is_ok());
    // A remembered answer is the same claims as a fresh verification, and remembered only for
    // its own campaign.
    assert_eq!(remembered, tickets.verify_signature(newest)?);
    assert_eq!(
        *tickets.verify_for(newest, &campaign)?,
        tickets.verify_signature(newest)?
    );
    assert!(
        cache
            .get(&cache::VerifiedCache::hash(&other, newest), &other)
            .is_none()
    );
    assert_eq!(
        tickets.verify_for(newest, &other).err(),
        Some(TicketError::OtherCampaign)
    );
    Ok(())
}

#[test]
fn a_zero_sized_cache_remembers_nothing_and_still_verifies() -> TestResult {
    let tickets = Tickets::new(TicketKeys::new(vec![TicketKey::generate()])?, 0);
    let token = tickets.sign(&claims()?)?;
    assert!(tickets.verify_for(&token, &claims()?.cid).is_ok());
    assert_eq!(tickets.cached(), 0);
    Ok(())
}

#[test]
fn a_ticket_is_good_only_for_its_own_campaign() -> TestResult {
    let tickets = tickets_with(&[&TicketKey::generate()])?;
    let token = tickets.sign(&claims()?)?;
    let ours = CampaignId::parse("concert-2026")?;
    let theirs = CampaignId::parse("concert-2027")?;
    assert_eq!(tickets.verify_for(&token, &ours)?.cid, ours);
    assert_eq!(
        tickets.verify_for(&token, &theirs).err(),
        Some(TicketError::OtherCampaign)
    );
    Ok(())
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    /// A fixed key and tickets verifying with it; a failure is the case's failure.
    fn fixed_tickets() -> Result<(TicketKey, Tickets), TestCaseError> {
        let key = TicketKey::parse("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let tickets = tickets_with(&[&key]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok((key, tickets))
    }

    proptest! {
        /// Whatever a client sends, a check answers an error (or, for a real ticket, the claims),
        /// never a panic.
        #[test]
        fn on_any_string(token in "\\PC{0,3000}|[A-Za-z0-9_.=-]{0,700}") {
            let (_, tickets) = fixed_tickets()?;
            prop_assert!(tickets.verify(&token).is_err());
            prop_assert!(tickets.verify_signature(&token).is_err());
        }

        /// Three well-formed base64url segments of any bytes, the header naming our key.
        #[test]
        fn on_any_segments(
            header in proptest::collection::vec(any::<u8>(), 0..100),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            signature in proptest::collection::vec(any::<u8>(), 0..80),
            kid_header in any::<bool>(),
        ) {
            let (key, tickets) = fixed_tickets()?;
            let header = if kid_header {
                b64(format!(r#"{{"alg":"EdDSA","kid":"{}","rlm":"{}"}}"#, key.kid(), b64(&header)))
            } else {
                b64(&header)
            };
            let token = format!("{header}.{}.{}", b64(&payload), b64(&signature));
            prop_assert!(tickets.verify(&token).is_err());
            prop_assert!(tickets.verify_signature(&token).is_err());
        }
    }
}

#[tokio::test]
async fn without_a_key_yet_every_call_is_unavailable_until_one_is_installed() -> TestResult {
    let tickets = Tickets::awaiting_shared_key(10);
    assert_eq!(
        tickets.sign(&claims()?).err(),
        Some(TicketError::KeysUnavailable)
    );
    assert_eq!(
        tickets.verify("a.b.c").err(),
        Some(TicketError::KeysUnavailable)
    );
    assert_eq!(tickets.jwks().err(), Some(TicketError::KeysUnavailable));
    assert_eq!(tickets.current_kid(), None);
    let waiting = tokio::spawn({
        let tickets = tickets.clone();
        async move { tickets.ready().await }
    });
    let key = TicketKey::generate();
    tickets.install(TicketKeys::new(vec![key.clone()])?);
    // Resolves once a key is installed (else the timeout's error fails the test).
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await??;
    // The first key stays: a replica never changes the key it signs with.
    tickets.install(TicketKeys::new(vec![TicketKey::generate()])?);
    assert_eq!(tickets.current_kid(), Some(key.kid()));
    let token = tickets.sign(&claims()?)?;
    assert!(tickets.verify(&token).is_ok());
    Ok(())
}
