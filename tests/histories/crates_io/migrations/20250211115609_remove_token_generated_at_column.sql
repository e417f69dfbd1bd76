-- crates.io migration 2025-02-11-115609_remove-token-generated-at-column (converted from Diesel's up.sql/down.sql)

-- migrate:up
DROP TRIGGER trigger_crate_owner_invitations_set_token_generated_at ON crate_owner_invitations;
DROP FUNCTION crate_owner_invitations_set_token_generated_at();
ALTER TABLE crate_owner_invitations DROP COLUMN token_generated_at;

-- migrate:down
ALTER TABLE crate_owner_invitations ADD COLUMN token_generated_at TIMESTAMP;

CREATE FUNCTION crate_owner_invitations_set_token_generated_at() RETURNS trigger AS $$
BEGIN
    NEW.token_generated_at := CURRENT_TIMESTAMP;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_crate_owner_invitations_set_token_generated_at BEFORE
    INSERT OR UPDATE OF token ON crate_owner_invitations
    FOR EACH ROW EXECUTE PROCEDURE crate_owner_invitations_set_token_generated_at();
