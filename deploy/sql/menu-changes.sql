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
-- A new product: its category's embedded list, count and lowest price follow.
INSERT INTO products (category_id, sku, name, price) VALUES (2, 'MN-003', 'Marinara', 9.00);
-- A channel is renamed: every category of the channel copies the new name.
UPDATE channels SET name = 'Web shop' WHERE code = 'WEB';
-- A customer is renamed: every order of the customer copies the new name.
UPDATE customers SET name = 'Ada L.' WHERE id = 1;
