-- Changes the demo makes while rowcast runs.
USE menu;
START TRANSACTION;
INSERT INTO orders (customer_id, channel_code, total) VALUES (1, 'WEB', 15.50), (2, 'APP', 3.20);
UPDATE orders SET status = 'paid' WHERE id = 1;
COMMIT;
-- A category moves within its channel (its item moves: delete old key, write new).
UPDATE categories SET display_order = 4 WHERE id = 1;
-- A category is deleted (leaves the view's filter).
UPDATE categories SET status = 'deleted' WHERE id = 6;
-- A rolled-back transaction never reaches the views.
START TRANSACTION;
INSERT INTO orders (customer_id, channel_code, total) VALUES (1, 'WEB', 999.99);
ROLLBACK;
