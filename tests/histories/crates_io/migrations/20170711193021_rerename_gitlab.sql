-- crates.io migration 20170711193021_rerename_gitlab (converted from Diesel's up.sql/down.sql)

-- migrate:up
UPDATE badges SET badge_type = replace(badge_type, 'git-lab', 'gitlab');

-- migrate:down
UPDATE badges SET badge_type = replace(badge_type, 'gitlab', 'git-lab');
