//! The original service's four README documents, as written: the
//! booking logic's HTTP tests send them to the schema over the fakes, the
//! end-to-end tests to the real host (`tests/tests/e2e/seed_documents.rs`).
//! Their ids are the README's: user `user_123`, showtime `showtime_456`
//! (seats A1 and A2) and booking `booking_123`, which a test replaces by a
//! real booking's id where the store chose another.

pub const CREATE_BOOKING: &str = r#"mutation CreateBooking {
  createBooking(
    userId: "user_123"
    showtimeId: "showtime_456"
    seatNumbers: ["A1", "A2"]
  ) {
    success
    message
    lockId
    booking {
      id
      userId
      showtimeId
      seats
      totalAmount
      status
      createdAt
    }
  }
}"#;

pub const PROCESS_PAYMENT: &str = r#"mutation ProcessPayment {
  processPayment(
    bookingId: "booking_123"
    paymentMethod: "credit_card"
    paymentDetails: "card_token_xyz"
  ) {
    success
    message
    booking {
      id
      status
      paymentTransactionId
    }
  }
}"#;

pub const GET_BOOKING: &str = r#"query GetBooking {
  getBooking(bookingId: "booking_123") {
    id
    userId
    showtimeId
    seats
    totalAmount
    status
    createdAt
    updatedAt
  }
}"#;

pub const GET_USER_BOOKINGS: &str = r#"query GetUserBookings {
  getUserBookings(userId: "user_123") {
    id
    showtimeId
    seats
    totalAmount
    status
    createdAt
  }
}"#;
