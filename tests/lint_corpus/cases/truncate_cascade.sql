-- CASCADE empties the referencing tables too.
TRUNCATE customers CASCADE;
