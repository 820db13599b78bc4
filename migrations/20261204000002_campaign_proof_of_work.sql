-- Proof of work on waiting-room joins (issue 12, CONTRACT.md `waiting_room.proof_of_work_bits`).
--
-- proof_of_work_bits: leading zero bits of SHA-256 a join must show (crates/api/src/waiting_room/
--   proof.rs); 0 asks none, and is what every campaign without a waiting room holds. Every
--   warm-up copies it into the campaign's Redis hash (`wr_pow`).

ALTER TABLE campaigns
    ADD COLUMN proof_of_work_bits smallint NOT NULL DEFAULT 0
        CONSTRAINT campaigns_proof_of_work_bits CHECK (proof_of_work_bits BETWEEN 0 AND 24);
