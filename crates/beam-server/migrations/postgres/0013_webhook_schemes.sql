-- Named webhook providers (issue 18): the generic HMAC scheme an event was
-- signed in travels with it, so `beam webhook` re-signs in the same scheme;
-- `custom` is now called `github`.
ALTER TABLE webhook_events ADD COLUMN hmac TEXT;
UPDATE webhook_events SET provider = 'github' WHERE provider = 'custom';
